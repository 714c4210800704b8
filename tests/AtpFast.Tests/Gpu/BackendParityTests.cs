using AtpFast.Attribution;
using AtpFast.Cpu;
using AtpFast.Onnx;
using AtpFast.Tasks;
using AtpFast.Tests.Attribution;
using AtpFast.Tests.Integration;

namespace AtpFast.Tests.Gpu;

/// <summary>
/// A backend computes what the CPU backend computes (itself checked against finite differences, ONNX Runtime and
/// PyTorch): logits, every node gradient, the AtP, AtP+QK, AtP+GradDrop and AtP* scores of every node (per position
/// and @*), and exactly patched metrics — for the three families, on models built in code and on the ONNX test models.
/// fp32 on both sides, compared relative to the scale of the whole table (max |Δ| ≤ 1e-4·max |value|): two fp32
/// implementations differ by rounding of the intermediates, so an entry that is small through cancellation (an @*
/// sum, a last-layer resid_pre) differs by the same absolute amount as a large one — against the fp64 backend the CPU's
/// own fp32 scores show per-entry relative errors up to 1e-2 on such entries while both fp32 backends stay within
/// ~3e-6 of the table's scale.
/// </summary>
public abstract class BackendParityTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;
    private const int Batch = 2, SeqLen = 7;

    /// <summary>The backend under test (or a skip).</summary>
    protected abstract IBackend CreateBackend(ModelWeights weights);

    /// <summary>Every n-th node is exactly patched (the CPU accelerator runs kernels slowly).</summary>
    protected virtual int PatchStride => 5;

    public static TheoryData<string> Models() => ["tiny-gpt2", "tiny-neox", "tiny-llama", "neox-tiny", "llama-interleaved", "stories260K"];

    private static ModelWeights Load(string model) => model switch
    {
        "neox-tiny" or "llama-interleaved" => OnnxImporter.Load(Path.Combine(ModelPaths.RepoRoot, "tests", "models", model, "model.onnx")).Weights,
        "stories260K" => OnnxImporter.Load(ModelPaths.Stories260K).Weights,
        _ => TinyModels.Create(model["tiny-".Length..]),
    };

    private static List<PromptPair> Pairs(ModelConfig c, int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, Batch).Select(_ => new PromptPair(TinyModels.Tokens(rng, SeqLen, c.VocabSize),
            TinyModels.Tokens(rng, SeqLen, c.VocabSize), rng.Next(c.VocabSize), rng.Next(c.VocabSize)))];
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Logits_match_the_cpu_backend(string model)
    {
        var weights = Load(model);
        using var backend = CreateBackend(weights);
        using var cpu = new CpuBackend(weights);
        var ids = Pairs(weights.Config, 1).SelectMany(p => p.Clean).ToArray();
        var expected = new float[Batch * SeqLen * weights.Config.VocabSize];
        var actual = new float[expected.Length];
        cpu.Forward(ids, Batch, SeqLen, expected);
        backend.Forward(ids, Batch, SeqLen, actual);
        double scale = expected.Max(Math.Abs), worst = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"{model}: max |Δlogit| {worst:E2} of max |logit| {scale:F2}");
        Assert.True(worst <= Tolerance * scale, $"logits differ by {worst} (scale {scale})");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Every_node_gradient_matches_the_cpu_backend(string model)
    {
        var weights = Load(model);
        using var backend = CreateBackend(weights);
        using var cpu = new CpuBackend(weights);
        var pairs = Pairs(weights.Config, 2);
        var ids = pairs.SelectMany(p => p.Clean).ToArray();
        var targets = new MetricTargets(MetricKind.LogitDiff, [.. pairs.Select(p => p.Answer)], [.. pairs.Select(p => p.Wrong)]);
        using var run = backend.Run(ids, Batch, SeqLen);
        using var grads = backend.CreateGradients(run);
        backend.Backward(run, targets, grads);
        using var cpuRun = cpu.Run(ids, Batch, SeqLen);
        using var cpuGrads = cpu.CreateGradients(cpuRun);
        cpu.Backward(cpuRun, targets, cpuGrads);
        var nodes = Attribution.FiniteDifferences.AllNodes(weights.Config, Batch, SeqLen, NodeTypes.All, weights.Config.Layers - 1);
        var space = new NodeSpace(weights.Config, SeqLen);
        var expected = nodes.Select(n =>
        {
            var v = new double[space.Width(n.Node.Type)];
            cpu.ReadGradient(cpuGrads, n.Example, n.Node, v);
            return v;
        }).ToList();
        double maxNorm = expected.Max(Attribution.FiniteDifferences.Norm), worst = 0;
        string worstNode = "";
        for (int i = 0; i < nodes.Count; i++)
        {
            var actual = new double[expected[i].Length];
            backend.ReadGradient(grads, nodes[i].Example, nodes[i].Node, actual);
            double error = Attribution.FiniteDifferences.Distance(actual, expected[i]) / maxNorm;
            if (error > worst) (worst, worstNode) = (error, $"{nodes[i].Node.Name} (example {nodes[i].Example})");
        }
        Assert.True(worst <= Tolerance, $"{worstNode}: ‖Δ∂L/∂n‖ is {worst:E2} of the largest node gradient");
        output.WriteLine($"{model}: {nodes.Count} node gradients, max ‖Δ‖ {worst:E2} of the largest ‖∂L/∂n‖ ({worstNode})");
    }

    public static TheoryData<string, string> ModelsAndMethods()
    {
        var data = new TheoryData<string, string>();
        foreach (string model in Models())
            foreach (string method in new[] { "atp", "atp+qk", "atp+gd", "atp*" }) data.Add(model, method);
        return data;
    }

    [Theory]
    [MemberData(nameof(ModelsAndMethods))]
    public void Attribution_scores_of_every_node_match_the_cpu_backend(string model, string method)
    {
        var weights = Load(model);
        using var backend = CreateBackend(weights);
        using var cpu = new CpuBackend(weights);
        var pairs = Pairs(weights.Config, 3);
        var options = new AttributionOptions { Method = AttributionMethods.Parse(method), Nodes = NodeTypes.All, Positions = PositionMode.Both };
        var expected = AtpFast.Attribution.Attribution.Run(cpu, pairs, options).Rows.ToDictionary(r => r.Node);
        var actual = AtpFast.Attribution.Attribution.Run(backend, pairs, options).Rows;
        Assert.Equal(expected.Count, actual.Count);
        double scale = expected.Values.Max(r => Math.Abs(r.Estimate)), worst = 0;
        string worstNode = "";
        foreach (var row in actual)
        {
            var e = expected[row.Node];
            foreach (var (a, b) in new[] { (row.Estimate, e.Estimate), (row.SignedEstimate, e.SignedEstimate) })
            {
                double error = Math.Abs(a - b) / scale;
                if (error > worst) (worst, worstNode) = (error, $"{row.Node.Name}: {a:G9} vs the CPU's {b:G9}");
            }
        }
        Assert.True(worst <= Tolerance, $"{worstNode} (difference {worst:E2} of the largest score)");
        output.WriteLine($"{model} {method}: {actual.Count} nodes, max |Δ| {worst:E2} of the largest score ({worstNode})");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Exactly_patched_metrics_match_the_cpu_backend(string model)
    {
        var weights = Load(model);
        using var backend = CreateBackend(weights);
        using var cpu = new CpuBackend(weights);
        var pairs = Pairs(weights.Config, 4);
        var space = new NodeSpace(weights.Config, SeqLen);
        var nodes = Enumerable.Range(0, space.Count).Where(id => id % PatchStride == 0).Select(id => space[id]).ToArray();
        var sets = nodes.Select((_, i) => (ReadOnlyMemory<Node>)nodes.AsMemory(i, 1)).ToList();
        var rng = new Random(5);
        for (int i = 0; i < 10; i++) sets.Add(Enumerable.Range(0, 1 + rng.Next(5)).Select(_ => space[rng.Next(space.Count)]).ToArray());
        var runs = sets.SelectMany(set => Enumerable.Range(0, Batch).Select(e => new PatchRun(e, set))).ToArray();
        foreach (var metric in new[] { MetricKind.LogitDiff, MetricKind.Kl })
        {
            double[] expected = Patch(cpu, pairs, runs, metric), actual = Patch(backend, pairs, runs, metric);
            double scale = Math.Max(1, expected.Max(Math.Abs)), worst = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
            output.WriteLine($"{model} {metric}: {runs.Length} patched runs, max difference {worst:E2} (scale {scale:F2})");
            Assert.True(worst <= Tolerance * scale, $"{metric}: patched metrics differ by {worst}");
        }
    }

    private static double[] Patch(IBackend backend, List<PromptPair> pairs, PatchRun[] runs, MetricKind metric)
    {
        using var clean = backend.Run(pairs.SelectMany(p => p.Clean).ToArray(), Batch, SeqLen);
        using var noise = backend.Run(pairs.SelectMany(p => p.Noise).ToArray(), Batch, SeqLen);
        var targets = new MetricTargets(metric, [.. pairs.Select(p => p.Answer)], [.. pairs.Select(p => p.Wrong)], clean);
        var values = new double[runs.Length];
        backend.PatchedMetric(clean, noise, runs, targets, values);
        return values;
    }
}

public sealed class IlgpuCpuAcceleratorParityTests(ITestOutputHelper output) : BackendParityTests(output)
{
    protected override IBackend CreateBackend(ModelWeights weights) => GpuBackends.CpuAccelerator(weights);
}

public sealed class CudaParityTests(ITestOutputHelper output) : BackendParityTests(output)
{
    protected override IBackend CreateBackend(ModelWeights weights) => GpuBackends.Cuda(weights);

    protected override int PatchStride => 1;
}
