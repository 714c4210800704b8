using System.CommandLine;
using AtpFast;
using AtpFast.Cli;

var root = new RootCommand("atpfast — attribution patching (AtP*) for transformer language models, on CPU or GPU.");
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(EvaluateCommand.Create());
root.Subcommands.Add(InspectCommand.Create());
root.Subcommands.Add(GenerateCommand.Create());

var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (var error in parsed.Errors) Console.Error.WriteLine("error: " + error.Message);
    Console.Error.WriteLine("run 'atpfast --help' for usage");
    return ExitCodes.BadInput;
}
try
{
    return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (AtpFastException e)
{
    // Every deliberate error names its problem; print that one line, not a stack trace.
    Console.Error.WriteLine("error: " + e.Message);
    return ExitCodes.BadInput;
}
