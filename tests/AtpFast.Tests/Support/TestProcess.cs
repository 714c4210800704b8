using System.Diagnostics;
using System.Text;

namespace AtpFast.Tests;

/// <summary>Runs a program to completion for a test: standard input closed, standard output and error captured (UTF-8),
/// killed with its children and the test failed when it outlives its time limit.</summary>
internal static class TestProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    /// <summary>Runs <paramref name="program"/> with <paramref name="arguments"/> as one command line.</summary>
    /// <param name="workingDirectory">Null: this process's.</param>
    /// <param name="environment">Edits the child's environment.</param>
    public static Result Run(string program, string arguments, string? workingDirectory, TimeSpan timeout,
        Action<IDictionary<string, string?>>? environment = null) =>
        Run(new ProcessStartInfo(program, arguments), workingDirectory, timeout, environment);

    /// <summary>Runs <paramref name="program"/> with <paramref name="arguments"/> passed one by one (no quoting needed).</summary>
    /// <inheritdoc cref="Run(string, string, string?, TimeSpan, Action{IDictionary{string, string?}}?)"/>
    public static Result Run(string program, IEnumerable<string> arguments, string? workingDirectory, TimeSpan timeout,
        Action<IDictionary<string, string?>>? environment = null) =>
        Run(new ProcessStartInfo(program, arguments), workingDirectory, timeout, environment);

    /// <summary>The last <paramref name="chars"/> characters of <paramref name="text"/> (for failure messages).</summary>
    public static string Tail(string text, int chars) => text.Length <= chars ? text : "..." + text[^chars..];

    private static Result Run(ProcessStartInfo info, string? workingDirectory, TimeSpan timeout, Action<IDictionary<string, string?>>? environment)
    {
        if (workingDirectory is not null) info.WorkingDirectory = workingDirectory;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.RedirectStandardInput = true;
        info.UseShellExecute = false;
        info.StandardOutputEncoding = Encoding.UTF8;
        info.StandardErrorEncoding = Encoding.UTF8;
        environment?.Invoke(info.Environment);
        string command = info.ArgumentList.Count > 0 ? $"{info.FileName} {string.Join(' ', info.ArgumentList)}" : $"{info.FileName} {info.Arguments}";
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {info.FileName}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"{command} did not finish within {timeout}:\n{Tail(stdout.Result, 3000)}\n{Tail(stderr.Result, 3000)}");
        }
        process.WaitForExit();
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }
}
