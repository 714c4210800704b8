using AtpFast.Attribution;
using AtpFast.Cpu;
using AtpFast.Tasks;

namespace AtpFast.Tests.Attribution;

/// <summary>
/// Invariants every backend must keep exactly: AtP of identical clean/noise inputs is 0; patching a node with its own
/// value is 0; prefix reuse and batching do not change an exactly patched metric by a single bit; per-position AtP
/// sums to the @* aggregate; the sum of AtP over a layer's resid_pre nodes is the first-order change of the metric.
/// </summary>
public abstract class InvariantTests
{
    protected abstract IBackend CreateBackend(ModelWeights weights);

    /// <summary>Every n-th node is patched in the exhaustive checks (the CPU accelerator runs kernels slowly).</summary>
    protected virtual int NodeStride => 1;

    public static TheoryData<string> Families() => [.. TinyModels.Names];

    private static List<PromptPair> Pairs(int seed, int count, int seqLen, bool identical)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ =>
        {
            var clean = TinyModels.Tokens(rng, seqLen);
            var noise = identical ? (int[])clean.Clone() : TinyModels.Tokens(rng, seqLen);
            int answer = rng.Next(TinyModels.Vocab);
            return new PromptPair(clean, noise, answer, (answer + 1 + rng.Next(TinyModels.Vocab - 1)) % TinyModels.Vocab);
        })];
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void AtP_family_of_identical_inputs_is_exactly_zero(string family)
    {
        var weights = TinyModels.Create(family);
        using var backend = CreateBackend(weights);
        var pairs = Pairs(3, 3, 6, identical: true);
        foreach (var method in new[] { AttributionMethod.Atp, AttributionMethod.AtpQk, AttributionMethod.AtpGd, AttributionMethod.AtpStar })
        {
            foreach (var direction in new[] { Direction.Noising, Direction.Denoising })
            {
                var result = AtpFast.Attribution.Attribution.Run(backend, pairs, new AttributionOptions
                {
                    Method = method, Direction = direction, Nodes = NodeTypes.All, Positions = PositionMode.Both,
                });
                Assert.NotEmpty(result.Rows);
                var nonzero = result.Rows.Where(r => r.Estimate != 0 || r.SignedEstimate != 0).Take(3).ToList();
                Assert.True(nonzero.Count == 0, $"{method.Name()} {direction.Name()}: " + string.Join(", ", nonzero.Select(r => $"{r.Node.Name} = {r.Estimate:G3}")));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Patching_every_node_with_its_own_value_gives_exactly_zero(string family)
    {
        var weights = TinyModels.Create(family);
        using var backend = CreateBackend(weights);
        var pairs = Pairs(4, 3, 6, identical: true);
        using var clean = backend.Run(pairs.SelectMany(p => p.Clean).ToArray(), 3, 6);
        using var noise = backend.Run(pairs.SelectMany(p => p.Noise).ToArray(), 3, 6);
        var space = new NodeSpace(weights.Config, 6);
        var nodes = Enumerable.Range(0, space.Count).Where(id => id % NodeStride == 0).Select(id => space[id]).ToArray();
        var runs = nodes.SelectMany((_, i) => Enumerable.Range(0, 3).Select(e => new PatchRun(e, nodes.AsMemory(i, 1)))).ToArray();
        foreach (var metric in new[] { MetricKind.LogitDiff, MetricKind.LogProb })
        {
            var targets = new MetricTargets(metric, [.. pairs.Select(p => p.Answer)], [.. pairs.Select(p => p.Wrong)]);
            var baseline = new double[3];
            backend.Metric(clean, targets, baseline);
            var values = new double[runs.Length];
            backend.PatchedMetric(clean, noise, runs, targets, values);
            var changed = runs.Select((r, i) => (r, i)).Where(x => values[x.i] != baseline[x.r.Example]).Take(3).ToList();
            Assert.True(changed.Count == 0, string.Join(", ", changed.Select(x =>
                $"{x.r.Nodes.Span[0].Name} (example {x.r.Example}) changes {metric} by {values[x.i] - baseline[x.r.Example]:G3}")));
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Prefix_reuse_and_batching_leave_every_patched_metric_bit_for_bit_unchanged(string family)
    {
        var weights = TinyModels.Create(family);
        using var backend = CreateBackend(weights);
        var pairs = Pairs(5, 2, 7, identical: false);
        var clean = pairs.SelectMany(p => p.Clean).ToArray();
        var noise = pairs.SelectMany(p => p.Noise).ToArray();
        using var baseRun = backend.Run(clean, 2, 7);
        using var source = backend.Run(noise, 2, 7);
        var targets = new MetricTargets(MetricKind.LogProb, [.. pairs.Select(p => p.Answer)], [.. pairs.Select(p => p.Wrong)]);
        var space = new NodeSpace(weights.Config, 7);
        var nodes = Enumerable.Range(0, space.Count).Where(id => id % NodeStride == 0).Select(id => space[id]).ToArray();
        // Single nodes of every kind, plus node sets spanning layers and positions.
        var sets = nodes.Select((_, i) => nodes.AsMemory(i, 1)).ToList();
        var rng = new Random(9);
        for (int i = 0; i < 40; i++)
            sets.Add(Enumerable.Range(0, 1 + rng.Next(6)).Select(_ => space[rng.Next(space.Count)]).ToArray());
        var runs = sets.SelectMany(set => new[] { new PatchRun(0, set), new PatchRun(1, set) }).ToArray();
        var fast = new double[runs.Length];
        var full = new double[runs.Length];
        var single = new double[runs.Length];
        backend.PatchedMetric(baseRun, source, runs, targets, fast);
        backend.PatchedMetric(baseRun, source, runs, targets, full, new PatchingOptions(DisablePrefixReuse: true));
        backend.PatchedMetric(baseRun, source, runs, targets, single, new PatchingOptions(MaxRunsPerBatch: 1));
        for (int i = 0; i < runs.Length; i++)
        {
            string what = string.Join("+", runs[i].Nodes.ToArray().Select(n => n.Name));
            Assert.True(fast[i] == full[i], $"{what}: prefix reuse {fast[i]:R} vs full recomputation {full[i]:R}");
            Assert.True(fast[i] == single[i], $"{what}: batched {fast[i]:R} vs alone {single[i]:R}");
        }
        Assert.Contains(fast, v => v != fast[0]); // the runs do patch something
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Per_position_AtP_sums_to_the_all_positions_aggregate(string family)
    {
        var weights = TinyModels.Create(family);
        using var backend = CreateBackend(weights);
        var pairs = Pairs(6, 1, 5, identical: false);
        var result = AtpFast.Attribution.Attribution.Run(backend, pairs, new AttributionOptions
        {
            Method = AttributionMethod.Atp, Nodes = NodeTypes.All, Positions = PositionMode.Both,
        });
        var signed = result.Rows.ToDictionary(r => r.Node, r => r.SignedEstimate);
        foreach (var (node, all) in signed.Where(kv => kv.Key.IsAllPositions))
        {
            double sum = Enumerable.Range(0, 5).Sum(p => signed[node with { Position = p }]);
            Assert.True(Math.Abs(sum - all) <= 1e-12 + 1e-9 * Math.Abs(all), $"{node.Name}: Σ per position {sum:R} vs @* {all:R}");
        }
    }

    /// <summary>Σ_t AtP(resid_pre@(l,t)) = ∇L·Δresid_pre_l, the derivative of L(resid_pre_l + εΔ) at ε = 0, computed by
    /// float64 finite differences through exact patching.</summary>
    [Theory]
    [MemberData(nameof(Families))]
    public void Sum_of_AtP_over_a_layers_resid_pre_nodes_is_the_first_order_change_of_the_metric(string family)
    {
        var weights = TinyModels.Create(family);
        using var backend = CreateBackend(weights);
        using var reference = new CpuBackend(weights, Precision.Float64);
        var pair = Pairs(7, 1, 5, identical: false)[0];
        var result = AtpFast.Attribution.Attribution.Run(backend, [pair], new AttributionOptions
        {
            Method = AttributionMethod.Atp, Nodes = NodeTypes.ResidPre, Positions = PositionMode.PerPosition,
        });
        using var clean = reference.Run(pair.Clean, 1, 5);
        using var noise = reference.Run(pair.Noise, 1, 5);
        var targets = new MetricTargets(MetricKind.LogitDiff, [pair.Answer], [pair.Wrong]);
        var baseMetric = new double[1];
        reference.Metric(clean, targets, baseMetric);
        int d = weights.Config.DModel;
        for (int l = 0; l < weights.Config.Layers; l++)
        {
            double atpSum = result.Rows.Where(r => r.Node.Layer == l).Sum(r => r.SignedEstimate);
            // L(ε) with resid_pre_l = clean + ε·(noise − clean) at every position, patched in jointly.
            double Metric(double eps)
            {
                using var source = reference.Clone(clean);
                var a = new double[d];
                var b = new double[d];
                var nodes = new Node[5];
                for (int t = 0; t < 5; t++)
                {
                    nodes[t] = new Node(NodeType.ResidPre, l, 0, t);
                    reference.ReadNode(clean, 0, nodes[t], a);
                    reference.ReadNode(noise, 0, nodes[t], b);
                    for (int i = 0; i < d; i++) a[i] += eps * (b[i] - a[i]);
                    reference.WriteNode(source, 0, nodes[t], a);
                }
                var value = new double[1];
                reference.PatchedMetric(clean, source, [new PatchRun(0, nodes)], targets, value);
                return value[0];
            }
            const double H = 1e-4;
            double derivative = (-Metric(2 * H) + 8 * Metric(H) - 8 * Metric(-H) + Metric(-2 * H)) / (12 * H);
            Assert.True(Math.Abs(atpSum - derivative) <= Tolerance * Math.Max(1, Math.Abs(derivative)),
                $"layer {l}: Σ AtP(resid_pre) = {atpSum:R}, first-order change = {derivative:R}");
            Assert.True(Math.Abs(Metric(0) - baseMetric[0]) == 0, "the unperturbed patched run must reproduce the clean metric");
        }
    }

    /// <summary>Agreement allowed between this backend's AtP and the float64 derivative.</summary>
    protected abstract double Tolerance { get; }
}

public sealed class CpuFp32InvariantTests : InvariantTests
{
    protected override IBackend CreateBackend(ModelWeights weights) => new CpuBackend(weights, Precision.Float32);

    protected override double Tolerance => 1e-4;
}

public sealed class CpuFp64InvariantTests : InvariantTests
{
    protected override IBackend CreateBackend(ModelWeights weights) => new CpuBackend(weights, Precision.Float64);

    protected override double Tolerance => 1e-8;
}

public sealed class IlgpuCpuAcceleratorInvariantTests : InvariantTests
{
    protected override IBackend CreateBackend(ModelWeights weights) => Gpu.GpuBackends.CpuAccelerator(weights);

    protected override int NodeStride => 3;

    protected override double Tolerance => 1e-4;
}

public sealed class CudaInvariantTests : InvariantTests
{
    protected override IBackend CreateBackend(ModelWeights weights) => Gpu.GpuBackends.Cuda(weights);

    protected override double Tolerance => 1e-4;
}
