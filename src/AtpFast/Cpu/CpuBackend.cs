namespace AtpFast.Cpu;

/// <summary>
/// The reference backend: the passes on the CPU in fp32 (or fp64 for gradient checks), vectorised with AVX2/FMA
/// where the machine has it and parallel over rows, heads and GEMM panels. See <see cref="IBackend"/> for the
/// contract; every cache it returns lives in managed memory.
/// </summary>
public sealed class CpuBackend : IBackend
{
    private readonly IBackend _engine;

    /// <summary>Creates a backend over <paramref name="weights"/>.</summary>
    /// <param name="weights">The model (not copied in fp32; do not modify while the backend is in use).</param>
    /// <param name="precision">fp32 (default) or fp64 (a converted copy of the weights; for gradient checks).</param>
    /// <param name="threads">Worker threads (0 = all cores).</param>
    public CpuBackend(ModelWeights weights, Precision precision = Precision.Float32, int threads = 0)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        _engine = precision switch
        {
            Precision.Float32 => new CpuEngine<float>(weights, threads, "cpu-fp32"),
            Precision.Float64 => new CpuEngine<double>(weights, threads, "cpu-fp64"),
            _ => throw new ArgumentOutOfRangeException(nameof(precision), $"the CPU backend runs fp32 or fp64, not {precision}"),
        };
    }

    /// <inheritdoc/>
    public string Name => _engine.Name;

    /// <inheritdoc/>
    public ModelWeights Weights => _engine.Weights;

    /// <inheritdoc/>
    public Precision Precision => _engine.Precision;

    /// <inheritdoc/>
    public void Dispose() => _engine.Dispose();

    /// <inheritdoc/>
    public void Forward(ReadOnlySpan<int> tokenIds, int batch, int seqLen, Span<float> logits) =>
        _engine.Forward(tokenIds, batch, seqLen, logits);

    /// <inheritdoc/>
    public int MaxBatch(int seqLen) => _engine.MaxBatch(seqLen);

    /// <inheritdoc/>
    public IRunCache Run(ReadOnlySpan<int> tokenIds, int batch, int seqLen) => _engine.Run(tokenIds, batch, seqLen);

    /// <inheritdoc/>
    public void Metric(IRunCache run, MetricTargets targets, Span<double> values) => _engine.Metric(run, targets, values);

    /// <inheritdoc/>
    public IGradientCache CreateGradients(IRunCache run) => _engine.CreateGradients(run);

    /// <inheritdoc/>
    public void Backward(IRunCache run, MetricTargets targets, IGradientCache gradients) => _engine.Backward(run, targets, gradients);

    /// <inheritdoc/>
    public void BackwardDroppingLayer(IRunCache run, IGradientCache full, int droppedLayer, IGradientCache gradients) =>
        _engine.BackwardDroppingLayer(run, full, droppedLayer, gradients);

    /// <inheritdoc/>
    public void AccumulateAttribution(AttributionRequest request, Span<double> sumAbs, Span<double> sumSigned) =>
        _engine.AccumulateAttribution(request, sumAbs, sumSigned);

    /// <inheritdoc/>
    public void PatchedMetric(IRunCache baseRun, IRunCache sourceRun, ReadOnlySpan<PatchRun> runs, MetricTargets targets,
        Span<double> values, PatchingOptions options = default) =>
        _engine.PatchedMetric(baseRun, sourceRun, runs, targets, values, options);

    /// <inheritdoc/>
    public void ReadNode(IRunCache run, int example, Node node, Span<double> values) => _engine.ReadNode(run, example, node, values);

    /// <inheritdoc/>
    public void ReadGradient(IGradientCache gradients, int example, Node node, Span<double> values) =>
        _engine.ReadGradient(gradients, example, node, values);

    /// <inheritdoc/>
    public void WriteNode(IRunCache run, int example, Node node, ReadOnlySpan<double> values) => _engine.WriteNode(run, example, node, values);

    /// <inheritdoc/>
    public IRunCache Clone(IRunCache run) => _engine.Clone(run);
}
