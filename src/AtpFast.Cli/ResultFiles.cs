using System.Globalization;
using System.Reflection;
using System.Text.Json;
using AtpFast.Attribution;

namespace AtpFast.Cli;

/// <summary>Where a result came from, for summary.json and report.html.</summary>
/// <param name="Model">The model as the user named it.</param>
/// <param name="ModelSha256">SHA-256 of the ONNX file.</param>
/// <param name="Tasks">The task file as the user named it.</param>
/// <param name="AllPairs">Pairs in the task file (all token lengths).</param>
/// <param name="PositionLabels">Text of each position of the first clean prompt, or null.</param>
/// <param name="BackendRequested">--backend as given.</param>
/// <param name="Units">Work units the run was cut into.</param>
/// <param name="Shards">How many shards computed them (1: one process).</param>
/// <param name="Command">The command line.</param>
internal sealed record RunContext(string Model, string ModelSha256, string Tasks, int AllPairs, string[]? PositionLabels,
    string BackendRequested = "cpu", int Units = 1, int Shards = 1, string? Command = null)
{
    public static string CommandLine() => "atpfast " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)
        .Select(a => a.Contains(' ', StringComparison.Ordinal) || a.Length == 0 ? "\"" + a + "\"" : a));
}

/// <summary>Writes an attribution result as the tidy table (results.jsonl, results.csv), summary.json and report.html,
/// each file atomically (temporary file, then rename).</summary>
internal static class ResultFiles
{
    public static readonly string[] Names = ["results.jsonl", "results.csv", "summary.json", "report.html"];

    public static void Write(AttributionResult result, string directory, RunContext context)
    {
        Directory.CreateDirectory(directory);
        result.WriteJsonl(Path.Combine(directory, "results.jsonl"));
        AttributionTable.WriteAtomically(Path.Combine(directory, "results.csv"), w => AttributionTable.WriteCsv(result.Rows, w));
        AttributionTable.WriteAtomically(Path.Combine(directory, "summary.json"), w => w.Write(Summary(result, context)));
        AttributionTable.WriteAtomically(Path.Combine(directory, "report.html"), w => w.Write(ReportHtml.Render(result, context)));
    }

    public static string Version => typeof(ResultFiles).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "dev";

    /// <summary>Settings, model hash, costs, timings, the bound and notes as indented JSON.</summary>
    public static string Summary(AttributionResult result, RunContext context)
    {
        var o = result.Options;
        var summary = new Dictionary<string, object?>
        {
            ["atpfast"] = Version,
            ["dotnet"] = Environment.Version.ToString(),
            ["model"] = context.Model,
            ["model_sha256"] = context.ModelSha256,
            ["tasks"] = context.Tasks,
            ["task_file_pairs"] = context.AllPairs,
            ["backend"] = result.Backend,
            ["backend_requested"] = context.BackendRequested,
            ["precision"] = result.Precision.ToString(),
            ["method"] = o.Method.Name(),
            ["metric"] = o.Metric.Name(),
            ["direction"] = o.Direction.Name(),
            ["nodes"] = Node.FormatTypes(o.Nodes),
            ["positions"] = o.Positions.ToString(),
            ["pairs"] = result.Pairs,
            ["seq_len"] = result.SeqLen,
            ["verify_top"] = o.VerifyTop,
            ["seed"] = o.Seed,
            ["work_units"] = context.Units,
            ["shards"] = context.Shards,
            ["command"] = context.Command,
            ["meaningful"] = result.Meaningful,
            ["baseline_metric_clean"] = result.BaselineMetric?.Clean,
            ["baseline_metric_noise"] = result.BaselineMetric?.Noise,
            ["cost_forward_equivalents_per_pair"] = new Dictionary<string, double>
            {
                ["method"] = result.MethodCost,
                ["verification"] = result.VerificationCost,
                ["bound"] = result.Bound?.CostForwardEquivalents ?? 0,
                ["total"] = result.TotalCost,
                ["brute_force"] = result.BruteForceCost,
            },
            ["cost_note"] = "forward-pass equivalents per prompt pair from the FLOP count of the executed passes (docs/attribution.md)",
            ["elapsed_seconds"] = result.Elapsed.TotalSeconds,
            ["bound"] = result.Bound is { } b ? new Dictionary<string, object?>
            {
                ["theta"] = double.IsFinite(b.Theta) ? b.Theta : null,
                ["alpha"] = b.Alpha,
                ["verified"] = b.Verified,
                ["remaining"] = b.Remaining,
                ["draws"] = b.Draws,
                ["inclusion_probability"] = b.InclusionProbability,
                ["limiting_node"] = b.LimitingNode,
                ["unbounded_nodes"] = b.Unbounded,
                ["statement"] = b.Describe(),
            } : null,
            ["notes"] = result.Notes,
            ["report"] = "report.html",
            ["written"] = DateTime.UtcNow.ToString("u", CultureInfo.InvariantCulture),
        };
        return JsonSerializer.Serialize(summary, SummaryJson.Options);
    }
}

internal static class SummaryJson
{
    public static readonly JsonSerializerOptions Options = new() { WriteIndented = true };
}
