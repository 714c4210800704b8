using System.Globalization;
using System.Reflection;
using System.Text.Json;
using AtpFast.Attribution;

namespace AtpFast.Cli;

/// <summary>Writes an attribution result as the tidy table (results.jsonl, results.csv) and summary.json, each file
/// atomically (temporary file, then rename).</summary>
internal static class ResultFiles
{
    public static void Write(AttributionResult result, string directory, string model, string modelSha256)
    {
        Directory.CreateDirectory(directory);
        result.WriteJsonl(Path.Combine(directory, "results.jsonl"));
        AttributionTable.WriteAtomically(Path.Combine(directory, "results.csv"), w => AttributionTable.WriteCsv(result.Rows, w));
        AttributionTable.WriteAtomically(Path.Combine(directory, "summary.json"), w => w.Write(Summary(result, model, modelSha256)));
    }

    /// <summary>Settings, model hash, costs, timings, the bound and notes as indented JSON.</summary>
    public static string Summary(AttributionResult result, string model, string modelSha256)
    {
        var o = result.Options;
        var summary = new Dictionary<string, object?>
        {
            ["atpfast"] = typeof(ResultFiles).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion,
            ["dotnet"] = Environment.Version.ToString(),
            ["model"] = model,
            ["model_sha256"] = modelSha256,
            ["backend"] = result.Backend,
            ["precision"] = result.Precision.ToString(),
            ["method"] = o.Method.Name(),
            ["metric"] = o.Metric.Name(),
            ["direction"] = o.Direction.Name(),
            ["nodes"] = Node.FormatTypes(o.Nodes),
            ["positions"] = o.Positions.ToString(),
            ["pairs"] = result.Pairs,
            ["seq_len"] = result.SeqLen,
            ["verify_top"] = o.VerifyTop,
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
            ["written"] = DateTime.UtcNow.ToString("u", CultureInfo.InvariantCulture),
        };
        return JsonSerializer.Serialize(summary, SummaryJson.Options);
    }
}

internal static class SummaryJson
{
    public static readonly JsonSerializerOptions Options = new() { WriteIndented = true };
}
