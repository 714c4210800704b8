using System.Text.Json;
using AtpFast.Attribution;
using AtpFast.Tasks;

namespace AtpFast.Tests.Attribution;

/// <summary>The baselines, verification, the bound, the cost accounting and the tidy table, on small models where
/// exact patching of every node is the reference.</summary>
public sealed class MethodTests
{
    private static readonly ModelWeights Model = TinyModels.Create("llama", seed: 4);

    private static List<PromptPair> Pairs(int count, int seqLen = 4)
    {
        var rng = new Random(11);
        return [.. Enumerable.Range(0, count).Select(_ => new PromptPair(TinyModels.Tokens(rng, seqLen), TinyModels.Tokens(rng, seqLen), 3, 7))];
    }

    private static AttributionResult Run(AttributionOptions options, List<PromptPair>? pairs = null) =>
        AtpFast.Attribution.Attribution.Run(Model, pairs ?? Pairs(3), options);

    private static Dictionary<Node, AttributionRow> ByNode(AttributionResult r) => r.Rows.ToDictionary(x => x.Node);

    [Fact]
    public void Blocks_of_one_node_are_exact_patching()
    {
        var options = new AttributionOptions { Nodes = NodeTypes.HeadOutput | NodeTypes.ResidPre };
        var exact = ByNode(Run(options with { Method = AttributionMethod.Exact }));
        var blocks = Run(options with { Method = AttributionMethod.Blocks, Budget = exact.Count + 2 });
        foreach (var row in blocks.Rows) Assert.Equal(exact[row.Node].SignedEstimate, row.SignedEstimate, 1e-12);
        Assert.True(blocks.MethodCost <= exact.Count + 2);
    }

    [Fact]
    public void Hierarchical_refinement_ends_in_exact_leaves_and_respects_its_budget()
    {
        var options = new AttributionOptions { Nodes = NodeTypes.HeadOutput | NodeTypes.Value };
        var exact = ByNode(Run(options with { Method = AttributionMethod.Exact }));
        var wide = Run(options with { Method = AttributionMethod.Hierarchical, Budget = 1000 });
        // With budget to spare every group is refined down to single nodes: the scores are the exact effects.
        foreach (var row in wide.Rows) Assert.Equal(exact[row.Node].SignedEstimate, row.SignedEstimate, 1e-9);
        var tight = Run(options with { Method = AttributionMethod.Hierarchical, Budget = 6 });
        Assert.True(tight.MethodCost <= 6 + 1e-9, $"cost {tight.MethodCost} over the budget 6");
        Assert.True(tight.MethodCost < wide.MethodCost);
    }

    [Fact]
    public void Subsampling_spends_its_budget_and_scores_every_node()
    {
        var result = Run(new AttributionOptions { Method = AttributionMethod.Subsampling, Nodes = NodeTypes.Neuron, Budget = 30 });
        Assert.True(result.MethodCost <= 30 + 1e-9 && result.MethodCost > 20, $"cost {result.MethodCost}");
        Assert.Equal(new NodeSpace(Model.Config, 4).Select(NodeTypes.Neuron, PositionMode.PerPosition).Length, result.Rows.Count);
        Assert.Contains(result.Rows, r => r.Estimate > 0);
    }

    [Fact]
    public void Verification_equals_exact_patching_and_costs_the_nodes_patched_runs()
    {
        var options = new AttributionOptions { Nodes = NodeTypes.Default };
        var exact = ByNode(Run(options with { Method = AttributionMethod.Exact }));
        var atpStar = Run(options with { VerifyTop = 12 });
        var verified = atpStar.Rows.Take(12).ToList();
        foreach (var row in verified) Assert.Equal(exact[row.Node].SignedEstimate, row.VerifiedEffect!.Value, 1e-12);
        Assert.All(atpStar.Rows.Skip(12), r => Assert.Null(r.VerifiedEffect));
        Assert.Equal(verified.Sum(r => exact[r.Node].CostForwardEquivalents), atpStar.VerificationCost, 1e-9);
    }

    [Fact]
    public void Method_costs_follow_the_cost_model()
    {
        var pairs = Pairs(3);
        var cost = new CostModel(Model.Config, 4);
        int layers = Model.Config.Layers;
        var atp = Run(new AttributionOptions { Method = AttributionMethod.Atp }, pairs);
        Assert.Equal(2 + cost.Backward(2) + cost.Products(layers, false), atp.MethodCost, 1e-12);
        var star = Run(new AttributionOptions(), pairs);
        double gradDrop = Enumerable.Range(0, layers).Sum(l => cost.GradDropPass(l) + cost.Products(l + 1, true));
        Assert.Equal(2 + cost.Backward(2) + cost.Products(layers, true) + gradDrop, star.MethodCost, 1e-12);
        Assert.True(star.MethodCost <= 3 + layers, $"AtP* costs {star.MethodCost} forward-equivalents per pair, above 3 + L");
        var exact = Run(new AttributionOptions { Method = AttributionMethod.Exact }, pairs);
        Assert.Equal(2 + exact.Rows.Sum(r => r.CostForwardEquivalents), exact.MethodCost, 1e-9);
        Assert.Equal(exact.MethodCost, exact.BruteForceCost, 1e-9);
    }

    [Fact]
    public void Cost_model_counts_the_flops_of_a_forward_and_of_a_patched_run()
    {
        var c = Model.Config; // 3 layers, d 16, 4 heads of 4, 2 kv heads, SwiGLU 12, vocab 19
        int t = 6;
        double block(double keyRows, double queryRows, double pairs) =>
            2 * keyRows * c.DModel * (c.QueryWidth + 2 * c.KvWidth) + 4 * c.HeadDim * c.Heads * pairs
            + 2 * queryRows * c.QueryWidth * c.DModel + 2 * queryRows * 3 * c.DModel * c.DMlp;
        double unit = c.Layers * block(t, t, t * (t + 1) / 2.0) + 2.0 * c.DModel * c.VocabSize;
        var model = new CostModel(c, t);
        Assert.Equal(unit, model.ForwardFlops, 1e-6);
        // A neuron at layer 1, position 2: block 1 at position 2 only (3 keys), block 2 (the last) with keys at
        // positions 2..5 and the query and MLP at position 5 (6 keys), then two logit columns.
        double neuron = block(1, 1, 3) + block(4, 1, 6) + 2.0 * c.DModel * 2;
        Assert.Equal(neuron / unit, model.Patched(PatchPlan.For([Node.Parse("L1.mlp.n0@2")], c.Layers, t), 2), 1e-12);
        // A key at layer 0, position 4: every block from position 4 (positions 4, 5), the last at position 5 only.
        double key = 2 * block(2, 2, 5 + 6) + block(2, 1, 6) + 2.0 * c.DModel * c.VocabSize;
        Assert.Equal(key / unit, model.Patched(PatchPlan.For([Node.Parse("L0.H1.k@4")], c.Layers, t), c.VocabSize), 1e-12);
        Assert.Equal(0, model.Patched(PatchPlan.For([Node.Parse("L2.H0.z@3")], c.Layers, t), 2));
    }

    /// <summary>The bound is about the marginal effect of a node in random subsets, which is its own effect when
    /// effects add up. MLP neurons with small subsets are close to that regime; there the bound must hold.</summary>
    [Fact]
    public void The_bound_covers_the_unverified_nodes_true_effects_when_effects_are_near_additive()
    {
        var pairs = Pairs(2);
        var options = new AttributionOptions { Nodes = NodeTypes.Neuron };
        var exact = ByNode(Run(options with { Method = AttributionMethod.Exact }, pairs));
        var result = Run(options with { VerifyTop = 10, BoundAlpha = 0.05, BoundDraws = 400, InclusionProbability = 0.05 }, pairs);
        var bound = result.Bound!;
        Assert.True(double.IsFinite(bound.Theta) && bound.Theta > 0, bound.Describe());
        Assert.Equal(result.Rows.Count - 10, bound.Remaining);
        double worstUnverified = result.Rows.Skip(10).Max(r => exact[r.Node].Estimate);
        Assert.True(worstUnverified <= bound.Theta, $"an unverified node has |effect| {worstUnverified} ≥ θ* = {bound.Theta}");
        Assert.True(bound.CostForwardEquivalents > 0);
        Assert.Contains("with confidence 95%", bound.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Rows_are_written_as_tidy_json_lines_and_csv()
    {
        var result = Run(new AttributionOptions { Nodes = NodeTypes.Query | NodeTypes.Neuron, Positions = PositionMode.Both, VerifyTop = 2 });
        var text = new StringWriter();
        result.WriteJsonl(text);
        var lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(result.Rows.Count, lines.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            var json = JsonDocument.Parse(lines[i]).RootElement;
            Assert.Equal(AttributionRow.Columns, json.EnumerateObject().Select(p => p.Name));
            var row = result.Rows[i];
            Assert.Equal(row.Node.Name, json.GetProperty("node").GetString());
            Assert.Equal(Node.Parse(json.GetProperty("node").GetString()!), row.Node);
            Assert.Equal(row.Rank, json.GetProperty("rank").GetInt32());
            Assert.Equal("atp*", json.GetProperty("method").GetString());
            Assert.Equal(row.Estimate, json.GetProperty("estimate").GetDouble());
            if (row.Node.IsAllPositions) Assert.Equal("*", json.GetProperty("position").GetString());
            else Assert.Equal(row.Node.Position, json.GetProperty("position").GetInt32());
            Assert.Equal(row.Node.Type == NodeType.Neuron ? JsonValueKind.Null : JsonValueKind.Number, json.GetProperty("head").ValueKind);
            Assert.Equal(i < 2 ? JsonValueKind.Number : JsonValueKind.Null, json.GetProperty("verified_effect").ValueKind);
        }
        var csv = new StringWriter();
        AttributionTable.WriteCsv(result.Rows, csv, top: 5);
        var csvLines = csv.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(string.Join(",", AttributionRow.Columns), csvLines[0].TrimEnd('\r'));
        Assert.Equal(6, csvLines.Length);
    }

    [Fact]
    public void Node_names_round_trip_and_ids_are_stable()
    {
        foreach (string family in TinyModels.Names)
        {
            var config = TinyModels.Create(family).Config;
            var space = new NodeSpace(config, 5);
            for (int id = 0; id < space.Count; id++)
            {
                var node = space[id];
                Assert.Equal(id, space.Id(node));
                Assert.Equal(node, Node.Parse(node.Name));
            }
        }
        Assert.Equal("L3.H1.q@7", new Node(NodeType.Query, 3, 1, 7).Name);
        Assert.Equal("L0.H2.k@*", new Node(NodeType.Key, 0, 2, Node.AllPositions).Name);
        Assert.Equal("L2.mlp.n17@0", new Node(NodeType.Neuron, 2, 17, 0).Name);
        Assert.Equal("L1.resid_pre@4", new Node(NodeType.ResidPre, 1, 0, 4).Name);
        Assert.Equal("L1.attn_out@*", new Node(NodeType.AttnOut, 1, 0, Node.AllPositions).Name);
        Assert.Equal("L1.mlp_out@2", new Node(NodeType.MlpOut, 1, 0, 2).Name);
        Assert.Equal(NodeTypes.Query | NodeTypes.Neuron | NodeTypes.ResidPre, Node.ParseTypes("q,neurons,resid_pre"));
        Assert.Throws<FormatException>(() => Node.Parse("L1.H0.x@2"));
        Assert.Throws<FormatException>(() => Node.ParseTypes("q,,k"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new NodeSpace(Model.Config, 4).Id(Node.Parse("L9.H0.q@0")));
    }
}
