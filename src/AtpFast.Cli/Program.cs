using System.CommandLine;
using AtpFast;
using AtpFast.Cli;

var root = new RootCommand("atpfast — attribution patching (AtP*) for transformer language models, on CPU or GPU.");
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(InspectCommand.Create());
root.Subcommands.Add(GenerateCommand.Create());

try
{
    return root.Parse(args).Invoke();
}
catch (AtpFastException e)
{
    // Every deliberate error names its problem; print that one line, not a stack trace.
    Console.Error.WriteLine("error: " + e.Message);
    return ExitCodes.BadInput;
}
