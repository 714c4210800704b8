using System.CommandLine;
using System.Globalization;
using AtpFast.Attribution;
using AtpFast.Cpu;
using AtpFast.Tasks;
using Spectre.Console;

namespace AtpFast.Cli;

/// <summary>
/// <c>atpfast demo</c>: AtP* on the embedded IOI model over its held-out prompt pairs (the largest group of equal token
/// length), the top nodes verified by exact patching, the false-negative bound over the rest, the cost against brute
/// force, and the tidy table written to <c>atpfast-demo/</c>.
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
        var source = ModelSource.Embedded();
        var config = source.Model.Config;
        var all = TaskFile.Parse(DemoModel.TasksJsonl(), source.RequireTokenizer(), config.VocabSize, "embedded tasks.jsonl");
        var pairs = PromptPairs.GroupByLength(all)[0];
        using var backend = new CpuBackend(source.Model.Weights);
        AnsiConsole.MarkupLine($"[bold]AtpFast demo[/] — {Markup.Escape(source.Description)}: {config.Layers} layers, d {config.DModel}, " +
                               $"{config.Heads} heads, {config.DMlp} neurons per layer; backend {backend.Name}");
        AnsiConsole.MarkupLine($"{pairs.Count} of the {all.Count} held-out IOI prompt pairs ({pairs[0].Length} tokens each; per-position " +
                               "nodes need one length); AtP* (QK fix + GradDrop), logit difference answer − wrong, noising");
        var options = new AttributionOptions { VerifyTop = 20, BoundAlpha = 0.05 };
        var result = ProgressDisplay.Run(progress => AtpFast.Attribution.Attribution.Run(backend, pairs, options with { Progress = progress }));

        if (result.BaselineMetric is { } baseline)
            AnsiConsole.MarkupLine(F($"mean logit difference: clean {baseline.Clean:F2}, noise {baseline.Noise:F2}"));
        var table = new Table().AddColumns("rank", "node", "AtP* (mean |·|)", "AtP* signed", "exact effect (verified)");
        foreach (var row in result.Rows.Take(15))
        {
            table.AddRow(row.Rank.ToString(CultureInfo.InvariantCulture), row.Node.Name, F($"{row.Estimate:F3}"), F($"{row.SignedEstimate:+0.000;-0.000}"),
                row.VerifiedEffect is { } v ? F($"{v:+0.000;-0.000}") : "");
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine(F($"cost per prompt pair, in forward-pass equivalents: AtP* {result.MethodCost:F1} + verifying the top 20 {result.VerificationCost:F1} + bound {result.Bound?.CostForwardEquivalents ?? 0:F1} = {result.TotalCost:F1}; ") +
                               F($"brute-force exact patching of all {result.Rows.Count:N0} nodes {result.BruteForceCost:N0} ({result.BruteForceCost / result.MethodCost:N0}× AtP*'s own cost)"));
        if (result.Bound is { } bound) AnsiConsole.MarkupLine(Markup.Escape(bound.Describe()));
        foreach (string note in result.Notes) AnsiConsole.MarkupLine("[yellow]" + Markup.Escape(note) + "[/]");
        ResultFiles.Write(result, outDir, "embedded ioi-gpt2", source.Model.Sha256);
        AnsiConsole.MarkupLine(F($"{result.Elapsed.TotalSeconds:F1} s; wrote {Markup.Escape(Path.Combine(outDir, "results.jsonl"))}, results.csv, summary.json"));
        return ExitCodes.Ok;
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
