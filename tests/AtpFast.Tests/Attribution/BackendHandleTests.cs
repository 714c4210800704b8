using AtpFast.Cpu;

namespace AtpFast.Tests.Attribution;

/// <summary>Caches belong to the backend that made them: a foreign, disposed or mismatched handle is a clear error.</summary>
public sealed class BackendHandleTests
{
    private static readonly ModelWeights Model = TinyModels.Create("neox");

    [Fact]
    public void Foreign_disposed_and_mismatched_handles_are_rejected()
    {
        using var backend = new CpuBackend(Model);
        using var other = new CpuBackend(Model);
        int[] ids = [1, 2, 3, 4];
        var targets = new MetricTargets(MetricKind.LogitDiff, [1], [2]);
        var values = new double[1];
        using var run = backend.Run(ids, 1, 4);
        using var foreign = other.Run(ids, 1, 4);
        Assert.Contains("not made by this backend", Assert.Throws<ArgumentException>(() => backend.Metric(foreign, targets, values)).Message, StringComparison.Ordinal);

        var disposed = backend.Run(ids, 1, 4);
        disposed.Dispose();
        Assert.Throws<ObjectDisposedException>(() => backend.Metric(disposed, targets, values));
        Assert.Throws<ObjectDisposedException>(() => backend.CreateGradients(disposed));

        using var shorter = backend.Run([1, 2, 3], 1, 3);
        var patch = new PatchRun(0, new[] { Node.Parse("L0.H0.q@0") });
        Assert.Throws<InvalidModelInputException>(() => backend.PatchedMetric(run, shorter, [patch], targets, values));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.PatchedMetric(run, run, [new PatchRun(3, patch.Nodes)], targets, values));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.PatchedMetric(run, run, [new PatchRun(0, new[] { Node.Parse("L9.H0.q@0") })], targets, values));

        using var full = backend.CreateGradients(run);
        backend.Backward(run, targets, full);
        using var dropped = backend.CreateGradients(run);
        backend.BackwardDroppingLayer(run, full, 1, dropped);
        Assert.Throws<ArgumentException>(() => backend.ReadGradient(dropped, 0, Node.Parse("L2.H0.z@1"), new double[Model.Config.HeadDim]));
        Assert.Throws<ArgumentException>(() => backend.ReadNode(run, 0, Node.Parse("L0.H0.z@1"), new double[3]));
        Assert.Throws<InvalidModelInputException>(() => backend.Metric(run, new MetricTargets(MetricKind.LogitDiff, [TinyModels.Vocab], [2]), values));
    }
}
