using System.CommandLine;
using System.Globalization;
using AtpFast.Attribution;
using AtpFast.Cpu;
using AtpFast.Tasks;
using Spectre.Console;

namespace AtpFast.Cli;

/// <summary>
/// <c>atpfast evaluate</c>: the cost of verified recall (spec §7) of every method against exhaustive exact patching on
/// one distribution of prompt pairs, and the recall of the true top 20; writes evaluation.md, curves.csv and
/// curves.svg. Default: the embedded IOI model and its held-out pairs (the largest group of one token length).
/// </summary>
internal static class EvaluateCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "ONNX file (default: the embedded IOI model)" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "tokenizer file (default: found next to the model)" };
        var tasks = new Option<string?>("--tasks") { Description = "prompt pairs, JSONL (default: the embedded held-out IOI pairs); the largest group of equal token length is used" };
        var nodes = new Option<string>("--nodes") { Description = "node types", DefaultValueFactory = _ => "q,k,v,z,neurons,resid_pre" };
        var metric = new Option<string>("--metric") { Description = "logit-diff, logprob, prob, kl, norm-logit-diff", DefaultValueFactory = _ => "logit-diff" };
        var direction = new Option<string>("--direction") { Description = "noising or denoising", DefaultValueFactory = _ => "noising" };
        var budgets = new Option<string>("--budgets") { Description = "budgets of subsampling, blocks and hierarchical: forward-equivalents per pair, or a percentage of brute force", DefaultValueFactory = _ => "1%,10%" };
        var maxK = new Option<int>("--max-k") { Description = "largest K of the curves", DefaultValueFactory = _ => 1000 };
        var output = new Option<string>("--out") { Description = "output folder", DefaultValueFactory = _ => "atpfast-evaluation" };
        var verifyTop = new Option<int>("--verify-top") { Description = "AtP* nodes verified before the false-negative bound", DefaultValueFactory = _ => 20 };
        var alpha = new Option<double>("--bound") { Description = "alpha of the false-negative bound checked against the truth (0 = skip)", DefaultValueFactory = _ => 0.05 };
        var command = new Command("evaluate", "Cost of verified recall of every method against exhaustive exact patching.")
        {
            model, tokenizer, tasks, nodes, metric, direction, budgets, maxK, output, verifyTop, alpha,
        };
        command.SetAction(parse => Run(parse.GetValue(model), parse.GetValue(tokenizer), parse.GetValue(tasks), parse.GetValue(nodes)!,
            parse.GetValue(metric)!, parse.GetValue(direction)!, parse.GetValue(budgets)!, parse.GetValue(maxK), parse.GetValue(output)!,
            parse.GetValue(verifyTop), parse.GetValue(alpha)));
        return command;
    }

    private static int Run(string? modelPath, string? tokenizerPath, string? tasksPath, string nodes, string metric, string direction,
        string budgets, int maxK, string outDir, int verifyTop, double alpha)
    {
        var source = ModelSource.Load(modelPath, tokenizerPath);
        var config = source.Model.Config;
        IReadOnlyList<PromptPair> all, pairs;
        if (tasksPath is null)
        {
            pairs = DemoModel.TaskPairs(source.Tokenizer, config.VocabSize, "embedded tasks.jsonl", out all);
        }
        else
        {
            string text = File.Exists(tasksPath) ? File.ReadAllText(tasksPath) : throw new AtpFastException($"task file not found: {tasksPath}");
            all = TaskFile.Parse(text, source.Tokenizer, config.VocabSize, tasksPath);
            pairs = PromptPairs.GroupByLength(all)[0];
        }
        AttributionOptions options;
        try
        {
            options = new AttributionOptions
            {
                Nodes = Node.ParseTypes(nodes), Metric = MetricNames.ParseMetric(metric), Direction = MetricNames.ParseDirection(direction),
                VerifyTop = verifyTop, BoundAlpha = alpha > 0 ? alpha : null,
            };
        }
        catch (FormatException e)
        {
            throw new AtpFastException(e.Message, e);
        }
        using var backend = new CpuBackend(source.Model.Weights);
        AnsiConsole.MarkupLine(Markup.Escape($"evaluating on {source.Description}: {pairs.Count} of {all.Count} pairs ({pairs[0].Length} tokens), " +
                                             $"nodes {nodes}, {metric}, {direction}, backend {backend.Name}"));
        double bruteForce = AtpFast.Attribution.Attribution.BruteForceCost(backend, pairs, options);
        var budgetValues = budgets.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(b => b.EndsWith('%')
            ? double.Parse(b[..^1], CultureInfo.InvariantCulture) / 100 * bruteForce
            : double.Parse(b, CultureInfo.InvariantCulture)).Select(b => Math.Round(b, 1)).ToArray();
        var methods = new List<(AttributionMethod, double?)>
        {
            (AttributionMethod.Atp, null), (AttributionMethod.AtpQk, null), (AttributionMethod.AtpGd, null), (AttributionMethod.AtpStar, null),
        };
        foreach (double b in budgetValues)
        {
            methods.Add((AttributionMethod.Subsampling, b));
            methods.Add((AttributionMethod.Blocks, b));
            methods.Add((AttributionMethod.Hierarchical, b));
        }
        var evaluation = ProgressDisplay.Run(progress => AttributionEvaluation.Run(backend, pairs, options with { Progress = progress }, methods, maxK));

        Directory.CreateDirectory(outDir);
        var md = new StringWriter(CultureInfo.InvariantCulture);
        WriteReport(md, evaluation, source, all.Count);
        AttributionTable.WriteAtomically(Path.Combine(outDir, "evaluation.md"), w => w.Write(md.ToString()));
        AttributionTable.WriteAtomically(Path.Combine(outDir, "curves.csv"), evaluation.WriteCurvesCsv);
        var series = new List<(string, IReadOnlyList<(double, double)>)>
        {
            ("brute force", [(1.0, evaluation.BruteForceCost), (evaluation.Methods[0].Curve.Length, evaluation.BruteForceCost)]),
        };
        series.AddRange(evaluation.Methods.Select(m => (m.Label, (IReadOnlyList<(double, double)>)m.Curve.Select((c, i) => ((double)(i + 1), c)).ToList())));
        AttributionTable.WriteAtomically(Path.Combine(outDir, "curves.svg"), w => w.Write(SvgPlot.LogLog(
            $"Cost of verified recall, {source.Description}", "K (true top-K nodes recalled and verified)", "forward-pass equivalents per prompt pair", series)));
        AnsiConsole.WriteLine(md.ToString());
        AnsiConsole.MarkupLine(Markup.Escape($"wrote {Path.Combine(outDir, "evaluation.md")}, curves.csv, curves.svg"));
        return ExitCodes.Ok;
    }

    private static void WriteReport(TextWriter w, EvaluationResult e, ModelSource source, int allPairs)
    {
        var o = e.Options;
        w.WriteLine(F($"# Cost of verified recall — {source.Description}"));
        w.WriteLine();
        w.WriteLine(F($"- model: {source.Description} (sha256 {source.Model.Sha256[..16]}…), backend {e.Backend}, {Environment.ProcessorCount} threads"));
        w.WriteLine(F($"- distribution: {e.Pairs} of {allPairs} prompt pairs ({e.SeqLen} tokens); metric {o.Metric.Name()}, {o.Direction.Name()}; nodes {Node.FormatTypes(o.Nodes)}, per position: {e.Nodes:N0} nodes, {e.NonzeroNodes:N0} with a nonzero exact effect"));
        w.WriteLine(F($"- ground truth: exhaustive exact patching, c(n) = |mean effect over pairs|; it cost {e.BruteForceCost:F1} forward-pass equivalents per pair and {e.TruthElapsed.TotalSeconds:F1} s"));
        w.WriteLine("- cost: forward-pass equivalents per prompt pair from the FLOP count of the passes each method executes (docs/attribution.md); the cost to recall the true top K is the method's own cost plus the exact patching of every node it ranks up to the last true top-K node");
        w.WriteLine(F($"- made by: `dotnet run --project src/AtpFast.Cli -c Release -- evaluate` on {DateTime.UtcNow:yyyy-MM-dd}"));
        w.WriteLine();
        e.WriteMarkdown(w);
        w.WriteLine();
        w.WriteLine("The true top 20 (signed mean effect):");
        w.WriteLine();
        w.WriteLine(string.Join(", ", e.TrueTop.Select(t => F($"{t.Node.Name} {t.Effect:+0.00;-0.00}"))));
        w.WriteLine();
        if (e.Bound is { } b)
        {
            w.WriteLine(F($"False-negative bound after verifying AtP*'s top {b.Bound.Verified}: {b.Bound.Describe()}. ") +
                        F($"Against the truth: the largest |effect| among the unverified nodes is {b.LargestUnverified:G4} ({b.LargestUnverifiedNode.Name}), so the bound {(b.Holds ? "holds" : "does NOT hold")} here."));
            w.WriteLine();
        }
        w.WriteLine("Curves: `curves.csv` (method, K, cost) and `curves.svg` (log-log).");
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
