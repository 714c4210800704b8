using AtpFast.Tests.Attribution;

namespace AtpFast.Tests.Gpu;

/// <summary>Patched runs that cannot reach the metric (<see cref="PatchPlan.NoEffect"/>) take the base run's metric,
/// which the GPU backend computes only when such a run is asked for; the other runs do not depend on it.</summary>
public sealed class GpuPatchingTests
{
    [Theory]
    [InlineData(MetricKind.LogitDiff)]
    [InlineData(MetricKind.Kl)]
    public void Runs_without_effect_take_the_base_metric_and_leave_the_others_unchanged(MetricKind kind)
    {
        var weights = TinyModels.Create("llama");
        int last = weights.Config.Layers - 1;
        using var backend = GpuBackends.CpuAccelerator(weights);
        using var clean = backend.Run([1, 3, 4, 1, 2, 3], 2, 3);
        using var noise = backend.Run([3, 1, 4, 2, 2, 1], 2, 3);
        var targets = new MetricTargets(kind, [4, 5], [5, 4], clean);
        var baseMetric = new double[2];
        backend.Metric(clean, targets, baseMetric);

        var noEffect = new Node(NodeType.MlpOut, last, 0, 0); // the last block before the last position
        Assert.True(PatchPlan.For([noEffect], weights.Config.Layers, 3, true).NoEffect);
        Node[] effective = [new(NodeType.ResidPre, 1, 0, 1), new(NodeType.HeadOutput, 0, 1, 2)];
        var only = effective.SelectMany(n => new[] { new PatchRun(0, new[] { n }), new PatchRun(1, new[] { n }) }).ToArray();
        var mixed = new[] { new PatchRun(1, new[] { noEffect }) }.Concat(only).Append(new PatchRun(0, new[] { noEffect })).ToArray();

        var onlyValues = new double[only.Length];
        backend.PatchedMetric(clean, noise, only, targets, onlyValues);
        var mixedValues = new double[mixed.Length];
        backend.PatchedMetric(clean, noise, mixed, targets, mixedValues);

        Assert.Equal(baseMetric[1], mixedValues[0]);
        Assert.Equal(baseMetric[0], mixedValues[^1]);
        Assert.Equal(onlyValues, mixedValues[1..^1]);
        Assert.Contains(onlyValues, v => v != baseMetric[0] && v != baseMetric[1]);
    }
}
