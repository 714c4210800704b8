using AtpFast.Cli;
using AtpFast.Cpu;

namespace AtpFast.Tests.Cli;

/// <summary><c>atpfast selftest</c>: the CPU fp32 backend agrees with the fp64 reference on every model it finds (the
/// embedded model, tests/models, stories260K) in logits, AtP scores, AtP* scores and exact patching; a backend that cannot
/// be created is reported as skipped with its reason; a backend that disagrees fails with exit code 1.</summary>
public sealed class SelftestCommandTests
{
    [Fact]
    public void The_cpu_backend_passes_on_every_model_and_cuda_is_skipped_with_its_reason()
    {
        var models = SelftestCommand.DiscoverModels([]);
        Assert.Contains(models, m => m.Name == "embedded ioi-gpt2");
        Assert.Contains(models, m => m.Name == "neox-tiny");
        Assert.Contains(models, m => m.Name == "llama-interleaved");
        if (File.Exists(Integration.ModelPaths.Stories260K)) Assert.Contains(models, m => m.Name == "stories260K");
        var checks = SelftestCommand.Run(SelftestCommand.Candidates, models);
        var cpu = checks.Where(c => c.Backend == "cpu").ToList();
        Assert.Equal(models.Count * 4, cpu.Count);
        Assert.All(cpu, c => Assert.True(c.Status == "pass", $"{c.Model} {c.Name}: {c.Error:E2} > {c.Tolerance:E0} {c.Detail}"));
        Assert.All(cpu, c => Assert.True(c.Error > 0 || c.Name == "exact patching", $"{c.Model} {c.Name}: fp32 and fp64 agree exactly — was the reference really fp64?"));
        var cuda = checks.Where(c => c.Backend == "cuda").ToList();
        if (cuda.All(c => c.Status == "skipped"))
            Assert.All(cuda, c => Assert.Contains("CUDA", c.Detail, StringComparison.Ordinal));
    }

    [Fact]
    public void A_backend_that_disagrees_fails_its_check_and_the_command_exits_1()
    {
        SelftestCommand.TestModel[] embedded = [SelftestCommand.EmbeddedModel()];
        (string, Func<ModelWeights, IBackend>)[] candidates =
        [
            ("skewed", w => new SkewedLogits(new CpuBackend(w))),
            ("unavailable", _ => throw new AtpFastException("no such device here")),
        ];
        var checks = SelftestCommand.Run(candidates, embedded);
        Assert.Equal("FAIL", checks.Single(c => c.Backend == "skewed" && c.Name == "logits").Status);
        Assert.Equal("pass", checks.Single(c => c.Backend == "skewed" && c.Name == "exact patching").Status);
        var skipped = checks.Single(c => c.Backend == "unavailable");
        Assert.Equal("skipped", skipped.Status);
        Assert.Equal("no such device here", skipped.Detail);
        Assert.Equal(ExitCodes.InternalError, SelftestCommand.Execute("all", [], candidates, embedded));
        Assert.Equal(ExitCodes.Ok, SelftestCommand.Execute("unavailable", [], candidates, embedded));
    }

    /// <summary>A CPU backend whose plain forward logits are 0.1% off.</summary>
    private sealed class SkewedLogits(IBackend inner) : IBackend
    {
        public string Name => "skewed";
        public ModelWeights Weights => inner.Weights;
        public Precision Precision => inner.Precision;
        public void Dispose() => inner.Dispose();
        public int MaxBatch(int seqLen) => inner.MaxBatch(seqLen);

        public void Forward(ReadOnlySpan<int> tokenIds, int batch, int seqLen, Span<float> logits)
        {
            inner.Forward(tokenIds, batch, seqLen, logits);
            for (int i = 0; i < logits.Length; i++) logits[i] *= 1.001f;
        }

        public IRunCache Run(ReadOnlySpan<int> tokenIds, int batch, int seqLen) => inner.Run(tokenIds, batch, seqLen);
        public void Metric(IRunCache run, MetricTargets targets, Span<double> values) => inner.Metric(run, targets, values);
        public IGradientCache CreateGradients(IRunCache run) => inner.CreateGradients(run);
        public void Backward(IRunCache run, MetricTargets targets, IGradientCache gradients) => inner.Backward(run, targets, gradients);
        public void BackwardDroppingLayer(IRunCache run, IGradientCache full, int droppedLayer, IGradientCache gradients) =>
            inner.BackwardDroppingLayer(run, full, droppedLayer, gradients);
        public void AccumulateAttribution(AttributionRequest request, Span<double> sumAbs, Span<double> sumSigned) =>
            inner.AccumulateAttribution(request, sumAbs, sumSigned);
        public void PatchedMetric(IRunCache baseRun, IRunCache sourceRun, ReadOnlySpan<PatchRun> runs, MetricTargets targets, Span<double> values,
            PatchingOptions options = default) => inner.PatchedMetric(baseRun, sourceRun, runs, targets, values, options);
        public void ReadNode(IRunCache run, int example, Node node, Span<double> values) => inner.ReadNode(run, example, node, values);
        public void ReadGradient(IGradientCache gradients, int example, Node node, Span<double> values) => inner.ReadGradient(gradients, example, node, values);
        public void WriteNode(IRunCache run, int example, Node node, ReadOnlySpan<double> values) => inner.WriteNode(run, example, node, values);
        public IRunCache Clone(IRunCache run) => inner.Clone(run);
    }
}
