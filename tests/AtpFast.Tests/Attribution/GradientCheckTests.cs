using System.Collections.Concurrent;
using AtpFast.Cpu;

namespace AtpFast.Tests.Attribution;

/// <summary>
/// Every node gradient of the activation-only backward (and of each GradDrop pass) equals float64 central finite
/// differences taken through exact patching, for each family and metric. A node passes when
/// ‖g − g_fd‖₂ ≤ tol·max(‖g_fd‖₂, 10⁻³·max_n ‖g_fd‖₂): relative error, with a floor so that nodes whose gradient is
/// a thousandth of the largest are judged on the scale of the others, not on their own rounding.
/// </summary>
public abstract class GradientCheckTests(ITestOutputHelper output)
{
    private const int Batch = 2, SeqLen = 5;

    /// <summary>The backend whose gradients are checked.</summary>
    protected abstract IBackend CreateBackend(ModelWeights weights);

    /// <summary>Allowed relative error (1e-3 for fp32 passes, 1e-7 for fp64).</summary>
    protected abstract double Tolerance { get; }

    public static TheoryData<string, MetricKind, Direction> Cases()
    {
        var data = new TheoryData<string, MetricKind, Direction>();
        foreach (string family in TinyModels.Names)
        {
            data.Add(family, MetricKind.LogitDiff, Direction.Noising);
            data.Add(family, MetricKind.LogitDiff, Direction.Denoising);
            data.Add(family, MetricKind.LogProb, Direction.Noising);
            data.Add(family, MetricKind.Prob, Direction.Noising);
            data.Add(family, MetricKind.Kl, Direction.Denoising);
            data.Add(family, MetricKind.NormalizedLogitDiff, Direction.Noising);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Backward_matches_float64_finite_differences_for_every_node(string family, MetricKind metric, Direction direction)
    {
        var weights = TinyModels.Create(family);
        var setup = new Setup(family, weights, metric, direction, seed: family.Length * 31 + (int)metric * 7 + (int)direction);
        using var backend = CreateBackend(weights);
        var expected = Reference(setup, droppedLayer: -1);

        var (run, testTargets, testClean) = setup.Prepare(backend);
        using var gradients = backend.CreateGradients(run);
        backend.Backward(run, testTargets, gradients);
        Compare(backend, gradients, expected, $"{family} {metric} {direction}");
        run.Dispose();
        testClean?.Dispose();
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void GradDrop_gradients_match_finite_differences_with_the_dropped_layer_frozen(string family)
    {
        var weights = TinyModels.Create(family);
        var setup = new Setup(family, weights, MetricKind.LogitDiff, Direction.Noising, seed: family.Length);
        using var backend = CreateBackend(weights);
        var (run, testTargets, _) = setup.Prepare(backend);
        using var full = backend.CreateGradients(run);
        backend.Backward(run, testTargets, full);
        using var dropped = backend.CreateGradients(run);
        for (int l = 0; l < weights.Config.Layers; l++)
        {
            backend.BackwardDroppingLayer(run, full, l, dropped);
            Assert.Equal(l, dropped.ValidThroughLayer);
            // The dropped layer's own nodes receive nothing; its resid_pre gets the skip path's gradient.
            var own = FiniteDifferences.AllNodes(weights.Config, Batch, SeqLen, NodeTypes.All & ~NodeTypes.ResidPre, l)
                .Where(n => n.Node.Layer == l);
            var buffer = new double[weights.Config.DModel];
            foreach (var (e, node) in own)
            {
                var values = buffer.AsSpan(0, new NodeSpace(weights.Config, SeqLen).Width(node.Type));
                backend.ReadGradient(dropped, e, node, values);
                Assert.True(values.ToArray().All(v => v == 0), $"{node.Name} has a gradient although its layer is detached");
            }
            var expected = Reference(setup, droppedLayer: l);
            Compare(backend, dropped, expected, $"{family} GradDrop layer {l}");
        }
        run.Dispose();
    }

    public static TheoryData<string> Families() => [.. TinyModels.Names];

    private static readonly ConcurrentDictionary<(string Family, MetricKind Metric, Direction Direction, int Seed, int DroppedLayer),
        Lazy<Dictionary<(int Example, Node Node), double[]>>> References = new();

    /// <summary>The fp64 finite-difference gradients of <paramref name="setup"/>'s case: of every node with no layer dropped
    /// (<paramref name="droppedLayer"/> −1), else of the nodes below the dropped layer and every resid_pre with its write
    /// frozen. They do not depend on the backend under test, so each is computed once for all the subclasses (read only).</summary>
    private static Dictionary<(int Example, Node Node), double[]> Reference(Setup setup, int droppedLayer) =>
        References.GetOrAdd((setup.Family, setup.Metric, setup.Direction, setup.Seed, droppedLayer), _ => new(() =>
        {
            var config = setup.Weights.Config;
            var nodes = droppedLayer < 0
                ? FiniteDifferences.AllNodes(config, Batch, SeqLen, NodeTypes.All, config.Layers - 1)
                : FiniteDifferences.AllNodes(config, Batch, SeqLen, NodeTypes.All, droppedLayer)
                    .Where(n => n.Node.Layer < droppedLayer || n.Node.Type == NodeType.ResidPre).ToList();
            using var reference = new CpuBackend(setup.Weights, Precision.Float64);
            var (baseRun, targets, clean) = setup.Prepare(reference);
            try
            {
                return FiniteDifferences.Gradients(reference, baseRun, targets, nodes, droppedLayer);
            }
            finally
            {
                baseRun.Dispose();
                clean?.Dispose();
            }
        }, LazyThreadSafetyMode.ExecutionAndPublication)).Value;

    private void Compare(IBackend backend, IGradientCache gradients, Dictionary<(int Example, Node Node), double[]> expected, string label)
    {
        double maxNorm = expected.Values.Max(FiniteDifferences.Norm);
        Assert.True(maxNorm > 0, $"{label}: every finite-difference gradient is zero; the check would be vacuous");
        double worst = 0;
        var failures = new List<string>();
        foreach (var ((e, node), fd) in expected)
        {
            var actual = new double[fd.Length];
            backend.ReadGradient(gradients, e, node, actual);
            double scale = Math.Max(FiniteDifferences.Norm(fd), 1e-3 * maxNorm);
            double error = FiniteDifferences.Distance(actual, fd) / scale;
            worst = Math.Max(worst, error);
            if (error > Tolerance && failures.Count < 10)
                failures.Add($"{node.Name} (example {e}): relative error {error:E2}, |g_fd| = {FiniteDifferences.Norm(fd):E2}, g[0] = {actual[0]:G6} vs {fd[0]:G6}");
        }
        output.WriteLine($"{label}: {expected.Count} node gradients, worst relative error {worst:E2} (tolerance {Tolerance:E0})");
        Assert.True(failures.Count == 0, $"{label}:\n" + string.Join("\n", failures));
    }

    /// <summary>Random prompts and targets for one case; <see cref="Prepare"/> builds the base run and metric on a backend.</summary>
    private sealed class Setup
    {
        private readonly int[] _clean, _noise, _answers, _wrongs;

        public Setup(string family, ModelWeights weights, MetricKind metric, Direction direction, int seed)
        {
            Family = family;
            Weights = weights;
            Metric = metric;
            Direction = direction;
            Seed = seed;
            var rng = new Random(seed);
            _clean = TinyModels.Tokens(rng, Batch * SeqLen);
            _noise = TinyModels.Tokens(rng, Batch * SeqLen);
            _answers = [.. Enumerable.Range(0, Batch).Select(_ => rng.Next(TinyModels.Vocab))];
            _wrongs = [.. _answers.Select(a => (a + 1 + rng.Next(TinyModels.Vocab - 1)) % TinyModels.Vocab)];
        }

        /// <summary>The tiny model's family (<see cref="TinyModels.Create"/>; <see cref="Weights"/> are its).</summary>
        public string Family { get; }
        public ModelWeights Weights { get; }
        public MetricKind Metric { get; }
        public Direction Direction { get; }
        public int Seed { get; }

        public (IRunCache Base, MetricTargets Targets, IRunCache? Clean) Prepare(IBackend backend)
        {
            var clean = backend.Run(_clean, Batch, SeqLen);
            var noise = backend.Run(_noise, Batch, SeqLen);
            var ld = new MetricTargets(MetricKind.LogitDiff, _answers, _wrongs);
            double[] high = new double[Batch], low = new double[Batch];
            backend.Metric(clean, ld, high);
            backend.Metric(noise, ld, low);
            var targets = new MetricTargets(Metric, _answers, _wrongs, Metric == MetricKind.Kl ? clean : null, low, high);
            if (Direction == Direction.Noising)
            {
                noise.Dispose();
                return (clean, targets, null);
            }
            return (noise, targets, clean);
        }
    }
}

public sealed class CpuFp32GradientCheckTests(ITestOutputHelper output) : GradientCheckTests(output)
{
    protected override IBackend CreateBackend(ModelWeights weights) => new CpuBackend(weights, Precision.Float32);

    protected override double Tolerance => 1e-3;
}

public sealed class CpuFp64GradientCheckTests(ITestOutputHelper output) : GradientCheckTests(output)
{
    protected override IBackend CreateBackend(ModelWeights weights) => new CpuBackend(weights, Precision.Float64);

    protected override double Tolerance => 1e-7;
}

public sealed class IlgpuCpuAcceleratorGradientCheckTests(ITestOutputHelper output) : GradientCheckTests(output)
{
    protected override IBackend CreateBackend(ModelWeights weights) => Gpu.GpuBackends.CpuAccelerator(weights);

    protected override double Tolerance => 1e-3;
}

public sealed class CudaGradientCheckTests(ITestOutputHelper output) : GradientCheckTests(output)
{
    protected override IBackend CreateBackend(ModelWeights weights) => Gpu.GpuBackends.Cuda(weights);

    protected override double Tolerance => 1e-3;
}
