using System.CommandLine;
using System.Globalization;
using AtpFast.Attribution;
using AtpFast.Cpu;
using Spectre.Console;

namespace AtpFast.Cli;

/// <summary>
/// <c>atpfast demo</c>: AtP* on the embedded IOI model over its held-out prompt pairs (the largest group of equal token
/// length), the top nodes verified by exact patching, the false-negative bound over the rest, the cost against brute
/// force, and the tidy table, summary.json and report.html written to <c>atpfast-demo/</c>.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "output folder", DefaultValueFactory = _ => "atpfast-demo" };
        var command = new Command("demo", "AtP* on the embedded IOI model and its held-out prompt pairs (no arguments needed).") { output };
        command.SetAction(parse => Run(parse.GetValue(output)!));
        return command;
    }

    private static int Run(string outDir)
    {
        // The embedded model and its held-out pairs of the most common length, as `atpfast run` without arguments loads them.
        var inputs = RunInputs.Load(modelPath: null, tokenizerPath: null, tasksPath: null, length: null);
        var source = inputs.Source;
        var config = source.Model.Config;
        var pairs = inputs.Pairs;
        using var backend = new CpuBackend(source.Model.Weights);
        AnsiConsole.MarkupLine($"[bold]AtpFast demo[/] — {Markup.Escape(source.Description)}: {config.Layers} layers, d {config.DModel}, " +
                               $"{config.Heads} heads, {config.DMlp} neurons per layer; backend {backend.Name}");
        AnsiConsole.MarkupLine($"{pairs.Count} of the {inputs.AllPairs} held-out IOI prompt pairs ({pairs[0].Length} tokens each; per-position " +
                               "nodes need one length); AtP* (QK fix + GradDrop), logit difference answer − wrong, noising");
        var options = new AttributionOptions { VerifyTop = 20, BoundAlpha = 0.05 };
        var result = ProgressDisplay.Run(progress => AtpFast.Attribution.Attribution.Run(backend, pairs, options with { Progress = progress }));

        ResultPrinter.Print(result);
        var context = new RunContext("embedded ioi-gpt2", source.Model.Sha256, "embedded tasks.jsonl (held-out IOI pairs)", inputs.AllPairs,
            inputs.PositionLabels(), "cpu", Command: "atpfast demo");
        ResultFiles.Write(result, outDir, context);
        AnsiConsole.MarkupLine(F($"{result.Elapsed.TotalSeconds:F1} s; wrote {Markup.Escape(Path.Combine(outDir, "report.html"))} (open it in a browser), results.jsonl, results.csv, summary.json"));
        return ExitCodes.Ok;
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
