using System.Text.RegularExpressions;

namespace AtpFast.Tests.Native;

/// <summary>Every exported function called with bad arguments (c/bad_args.c: NULL pointers, wrong sizes, unknown model
/// path, truncated model buffer, destroyed, foreign and wrong-kind handles, wrong enum values) answers a non-zero status
/// and a readable last-error message without crashing, natively and under valgrind memcheck.</summary>
[Collection(NativeCollection.Name)]
public sealed partial class BadArgumentTests
{
    // Functions that take nothing that can be wrong: checked for their values instead.
    private static readonly string[] Infallible = ["atp_version", "atp_version_string", "atp_status_name", "atp_last_error"];

    [Fact]
    public void Every_export_rejects_bad_arguments_with_a_status_and_a_message()
    {
        var run = Natively.Value;
        Assert.True(run.ExitCode == 0, $"bad_args failed ({run.ExitCode}):\n{Failures(run.Stdout)}\n{TestProcess.Tail(run.Stderr, 4000)}");
        var checks = Checks(run.Stdout);
        Assert.DoesNotContain(run.Stdout.Split('\n'), l => l.StartsWith("FAILED", StringComparison.Ordinal));

        // Coverage: every function the header declares (and the library exports) has checks, the fallible ones with an error.
        var declared = HeaderFunctions();
        Assert.Equal(24, declared.Count);
        foreach (string function in declared)
        {
            Assert.True(checks.Any(c => c.Function == function), $"{function} is declared in atpfast.h but bad_args.c never checks it");
            if (!Infallible.Contains(function))
                Assert.True(checks.Any(c => c.Function == function && c.Expected != "ATP_OK"), $"{function} is never called with a bad argument");
        }
        // The kinds of bad argument the issue lists, each at least once.
        Assert.Contains(checks, c => c.Expected == "ATP_ERR_NULL_ARGUMENT");
        Assert.Contains(checks, c => c.Message.Contains("was destroyed", StringComparison.Ordinal));
        Assert.Contains(checks, c => c.Message.Contains("0x5eed5eed5eed5eed", StringComparison.Ordinal)); // a made-up handle
        Assert.Contains(checks, c => c.Message.Contains("handle, not an", StringComparison.Ordinal));     // a handle of another kind
        Assert.Contains(checks, c => c.Function == "atp_model_load_file" && c.Expected == "ATP_ERR_IO" && c.Message.Contains("does not exist", StringComparison.Ordinal));
        Assert.Contains(checks, c => c.Function == "atp_model_load_buffer" && c.Expected == "ATP_ERR_MODEL" && c.Message.Contains("truncated", StringComparison.Ordinal));
        Assert.Contains(checks, c => c.Function == "atp_context_create" && c.Expected == "ATP_ERR_NOT_AVAILABLE" && c.Message.Contains("not available in this build", StringComparison.Ordinal));
        Assert.Contains(checks, c => c.Expected == "ATP_ERR_BUFFER_TOO_SMALL");
        Assert.Contains(checks, c => c.Expected == "ATP_ERR_BAD_ARGUMENT" && c.Message.Contains("struct_size", StringComparison.Ordinal));
        Assert.Contains(checks, c => c.Expected == "ATP_ERR_BAD_ARGUMENT" && c.Message.Contains("options.method is 8", StringComparison.Ordinal));
        Assert.True(checks.Count > 150, $"only {checks.Count} checks ran");
    }

    [Fact]
    public void Bad_arguments_under_valgrind_memcheck_have_no_invalid_reads_or_writes()
    {
        if (NativeBuild.Which("valgrind") is null)
            Assert.Skip("valgrind is not installed (apt-get install valgrind; .ci/run installs it when run as root)");
        var run = Run(valgrind: true);
        Assert.True(run.ExitCode == 0, $"bad_args under valgrind failed ({run.ExitCode}):\n{Failures(run.Stdout)}\n{TestProcess.Tail(run.Stderr, 6000)}");
        Assert.Contains("ERROR SUMMARY:", run.Stderr, StringComparison.Ordinal);
        // NativeAOT's GC and stack walks can draw benign reports (uninitialised-value and leak noise); what must never
        // appear is an access outside valid memory or a bad free.
        string[] invalid = [.. run.Stderr.Split('\n').Where(l => InvalidAccess().IsMatch(l))];
        Assert.True(invalid.Length == 0, "valgrind found invalid accesses:\n" + TestProcess.Tail(run.Stderr, 8000));
        Assert.Equal(Checks(run.Stdout).Count, Checks(Natively.Value.Stdout).Count);
        TestContext.Current.TestOutputHelper?.WriteLine(run.Stderr.Split('\n').LastOrDefault(l => l.Contains("ERROR SUMMARY", StringComparison.Ordinal)) ?? "");
    }

    /// <summary>The native run (without valgrind), shared by both tests.</summary>
    private static readonly Lazy<TestProcess.Result> Natively = new(() => Run(valgrind: false), LazyThreadSafetyMode.ExecutionAndPublication);

    private static TestProcess.Result Run(bool valgrind)
    {
        string exe = Program.Value;
        string scratch = Directory.CreateDirectory(Path.Combine(NativeBuild.Work, "bad-args-scratch-" + Guid.NewGuid().ToString("N")[..8])).FullName;
        try
        {
            string args = $"\"{NativeBuild.IoiModel}\" \"{scratch}\"";
            if (!valgrind) return TestProcess.Run(exe, args, NativeBuild.Work, TimeSpan.FromMinutes(2));
            // Debian 12's valgrind (3.19) gives up on the DWARF 5 of libatpfast.so.dbg ("unhandled dwarf2 abbrev form
            // code 0x25"), which it finds through the library's debug link: run a copy without the .dbg beside it.
            string alone = Directory.CreateDirectory(Path.Combine(scratch, "valgrind")).FullName;
            File.Copy(exe, Path.Combine(alone, "bad_args"));
            File.Copy(NativeBuild.AotLibrary, Path.Combine(alone, "libatpfast.so"));
            return TestProcess.Run("valgrind", $"--tool=memcheck --error-exitcode=0 \"{Path.Combine(alone, "bad_args")}\" {args}",
                NativeBuild.Work, TimeSpan.FromMinutes(8));
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    private static readonly Lazy<string> Program = new(
        () => NativeBuild.CompileTestProgram(NativeBuild.TestSource("bad_args.c"), NativeBuild.AotLibraryDir, posix: "200809L",
            optimize: "-O1 -g", libraries: "-lm -lpthread"),
        LazyThreadSafetyMode.ExecutionAndPublication);

    private sealed record Check(string Function, string Expected, string Got, string Message);

    private static List<Check> Checks(string stdout) =>
    [
        .. stdout.Split('\n').Where(l => l.StartsWith("check ", StringComparison.Ordinal) || l.StartsWith("FAILED ", StringComparison.Ordinal))
            .Select(l =>
            {
                string[] head = l.Split(" | ", 2)[0].Split(' ');
                string message = l.Contains(" | ", StringComparison.Ordinal) ? l.Split(" | ")[1] : "";
                return new Check(head[1], head.Length > 2 ? head[2] : "", head.Length > 3 ? head[3] : "", message);
            }),
    ];

    private static string Failures(string stdout) =>
        string.Join('\n', stdout.Split('\n').Where(l => !l.StartsWith("check ", StringComparison.Ordinal)));

    /// <summary>The function names atpfast.h declares.</summary>
    internal static List<string> HeaderFunctions() =>
        [.. Declaration().Matches(File.ReadAllText(NativeBuild.Header)).Select(m => m.Groups[1].Value).Distinct()];

    [GeneratedRegex(@"^(?:const\s+)?\w+\s*\*?\s*(atp_\w+)\(", RegexOptions.Multiline)]
    private static partial Regex Declaration();

    [GeneratedRegex(@"Invalid (read|write|free)|Mismatched free|Jump to the invalid address|Process terminating")]
    private static partial Regex InvalidAccess();
}
