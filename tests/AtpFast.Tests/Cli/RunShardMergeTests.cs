using System.Text.Json;
using AtpFast.Attribution;
using AtpFast.Onnx;
using AtpFast.Tasks;
using AtpFast.Tokenizers;
using AtpFast.Tests.Integration;

namespace AtpFast.Tests.Cli;

/// <summary><c>atpfast run</c> end to end on stories260K: the tidy table of a single run, and the same table, byte for
/// byte, from <c>--shard 0/2</c> + <c>1/2</c> + <c>merge</c> (AtP* sharded over pairs) and from three shards of exact
/// patching (sharded over pairs and nodes); the numbers agree with the library's Attribution.Run.</summary>
public sealed class RunShardMergeTests
{
    [Fact]
    public void Two_shards_merged_give_the_same_table_as_one_run()
    {
        string model = CliTasks.Stories260KModel;
        using var dir = new TempFolder("shards");
        string tasks = CliTasks.Stories260K(dir.Path);
        string[] common = ["run", "--model", model, "--tasks", tasks, "--unit-pairs", "2", "--verify-top", "5", "--bound-draws", "40"];
        Atpfast.Ok([.. common, "--out", dir["single"]]);
        Atpfast.Ok([.. common, "--out", dir["s0"], "--shard", "0/2"]);
        Atpfast.Ok([.. common, "--out", dir["s1"], "--shard", "1/2"]);
        // Shards hold only their units (3 units of 2 pairs: shard 0 has units 0 and 2) and no results.
        Assert.Equal(["unit-000000.bin", "unit-000002.bin"], Directory.GetFiles(dir["s0/units"]).Select(Path.GetFileName).Order());
        Assert.False(File.Exists(dir["s0/results.jsonl"]));
        Atpfast.Ok("merge", dir["s0"], dir["s1"], "--out", dir["merged"]);

        foreach (string file in new[] { "results.jsonl", "results.csv" })
            Assert.Equal(File.ReadAllText(dir[Path.Combine("single", file)]), File.ReadAllText(dir[Path.Combine("merged", file)]));
        Assert.True(File.Exists(dir["merged/report.html"]) && File.Exists(dir["merged/summary.json"]));
        Assert.False(Directory.Exists(dir["single/units"]), "a finished single run keeps no units");
        Assert.False(File.Exists(dir["single/run.json"]));

        var rows = File.ReadAllLines(dir["single/results.jsonl"]).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(5 * 15 * (8 + 4 + 4 + 8 + 172 + 1), rows.Count); // 5 layers, 15 tokens: q, k, v, z, neurons, resid_pre
        Assert.Equal(5, rows.Count(r => r.GetProperty("verified_effect").ValueKind == JsonValueKind.Number));
        Assert.All(rows, r => Assert.Equal("atp*", r.GetProperty("method").GetString()));

        // The pair-weighted mean of the units equals the library's run over all pairs up to rounding.
        var pairs = TaskFile.Parse(File.ReadAllText(tasks), PieceTokenizer.FromReferenceJson(ModelPaths.Stories260KReference), 512);
        var library = AtpFast.Attribution.Attribution.Run(OnnxImporter.Load(model).Weights, pairs, new AttributionOptions());
        var expected = library.Rows.ToDictionary(r => r.Node.Name);
        double scale = library.Rows[0].Estimate;
        foreach (var row in rows)
        {
            var e = expected[row.GetProperty("node").GetString()!];
            Assert.Equal(e.Estimate, row.GetProperty("estimate").GetDouble(), 1e-12 * scale);
            Assert.Equal(e.SignedEstimate, row.GetProperty("signed_estimate").GetDouble(), 1e-12 * scale);
        }
        Assert.Equal(library.MethodCost, rows[0].GetProperty("cost_forward_equivalents").GetDouble(), 1e-9);
    }

    [Fact]
    public void Exact_patching_sharded_over_pairs_and_nodes_merges_into_the_single_run()
    {
        string model = CliTasks.Stories260KModel;
        using var dir = new TempFolder("exact-shards");
        string tasks = CliTasks.Stories260K(dir.Path);
        string[] common = ["run", "--model", model, "--tasks", tasks, "--method", "exact", "--nodes", "z,resid_pre", "--unit-pairs", "4",
            "--slice-nodes", "250", "--verify-top", "5", "--bound", "0"];
        Atpfast.Ok([.. common, "--out", dir["single"]]);
        for (int i = 0; i < 3; i++) Atpfast.Ok([.. common, "--out", dir[$"s{i}"], "--shard", $"{i}/3"]);
        Atpfast.Ok("merge", dir["s0"], dir["s1"], dir["s2"], "--out", dir["merged"]);
        Assert.Equal(File.ReadAllText(dir["single/results.csv"]), File.ReadAllText(dir["merged/results.csv"]));
        Assert.Equal(File.ReadAllText(dir["single/results.jsonl"]), File.ReadAllText(dir["merged/results.jsonl"]));

        // 2 pair blocks × 3 node slices (675 nodes) = 6 units; the exact effects match the library's exact run.
        var summary = JsonDocument.Parse(File.ReadAllText(dir["merged/summary.json"])).RootElement;
        Assert.Equal(6, summary.GetProperty("work_units").GetInt32());
        var rows = File.ReadAllLines(dir["single/results.jsonl"]).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(5 * 15 * (8 + 1), rows.Count);
        var pairs = TaskFile.Parse(File.ReadAllText(tasks), PieceTokenizer.FromReferenceJson(ModelPaths.Stories260KReference), 512);
        var library = AtpFast.Attribution.Attribution.Run(OnnxImporter.Load(model).Weights, pairs,
            new AttributionOptions { Method = AttributionMethod.Exact, Nodes = NodeTypes.HeadOutput | NodeTypes.ResidPre });
        var expected = library.Rows.ToDictionary(r => r.Node.Name);
        foreach (var row in rows)
        {
            var e = expected[row.GetProperty("node").GetString()!];
            Assert.Equal(e.SignedEstimate, row.GetProperty("signed_estimate").GetDouble(), 1e-12);
            Assert.Equal(e.CostForwardEquivalents, row.GetProperty("cost_forward_equivalents").GetDouble(), 1e-12);
        }
        Assert.Equal(library.MethodCost, summary.GetProperty("cost_forward_equivalents_per_pair").GetProperty("method").GetDouble(), 1e-9);
    }
}
