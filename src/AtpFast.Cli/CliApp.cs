using System.CommandLine;

namespace AtpFast.Cli;

/// <summary>The <c>atpfast</c> command tree and its error handling: a deliberate error (bad flag, file, line) is one
/// line on stderr and exit code 2; an interruption exit code 130; anything else a stack trace and exit code 1.</summary>
internal static class CliApp
{
    public static RootCommand Root()
    {
        var root = new RootCommand("atpfast — attribution patching (AtP*) for transformer language models, on CPU or GPU.");
        root.Subcommands.Add(DemoCommand.Create());
        root.Subcommands.Add(RunCommand.Create());
        root.Subcommands.Add(MergeCommand.Create());
        root.Subcommands.Add(EvaluateCommand.Create());
        root.Subcommands.Add(InspectCommand.Create());
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(SelftestCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        return root;
    }

    /// <summary>Parses and runs <paramref name="args"/>; errors go to <paramref name="error"/> (default: stderr).</summary>
    public static int Run(string[] args, TextWriter? error = null)
    {
        error ??= Console.Error;
        var parsed = Root().Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var e in parsed.Errors) error.WriteLine("error: " + e.Message);
            error.WriteLine("run 'atpfast --help' for usage");
            return ExitCodes.BadInput;
        }
        try
        {
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
        }
        catch (AtpFastException e)
        {
            // Every deliberate error names its problem; print that one line, not a stack trace.
            error.WriteLine("error: " + e.Message);
            return ExitCodes.BadInput;
        }
        catch (OperationCanceledException)
        {
            error.WriteLine("interrupted");
            return ExitCodes.Interrupted;
        }
    }
}
