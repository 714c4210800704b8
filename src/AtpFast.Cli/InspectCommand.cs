using System.CommandLine;

namespace AtpFast.Cli;

/// <summary><c>atpfast inspect M.onnx</c>: the recovered architecture, parameter counts and weight mapping.</summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var model = new Argument<string?>("model")
        {
            Description = "ONNX file to inspect (default: the embedded demo model)",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var command = new Command("inspect", "Show the architecture recovered from an ONNX file and how each weight was mapped.")
        {
            model,
        };
        command.SetAction(parse =>
        {
            var source = ModelSource.Load(parse.GetValue(model), tokenizerPath: null);
            Console.WriteLine($"model: {source.Description}");
            Console.WriteLine($"sha256: {source.Model.Sha256}");
            Console.WriteLine(source.Model.Summary());
            return ExitCodes.Ok;
        });
        return command;
    }
}
