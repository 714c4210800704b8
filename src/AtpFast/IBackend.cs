namespace AtpFast;

/// <summary>Arithmetic precision of a backend's passes. Every result records the one it used.</summary>
public enum Precision
{
    /// <summary>IEEE fp32 everywhere (the reference).</summary>
    Float32,
    /// <summary>IEEE fp64 everywhere (CPU only; used for gradient checks).</summary>
    Float64,
    /// <summary>Matrix products on tensor cores with TF32 inputs (10-bit mantissa) and fp32 accumulation; everything
    /// else fp32 (GPU backend).</summary>
    Tf32,
    /// <summary>Matrix products on tensor cores with BF16 inputs (8-bit mantissa) and fp32 accumulation; everything else
    /// fp32 (GPU backend).</summary>
    Bf16,
}

/// <summary>
/// A cached forward pass of a batch held inside its backend: every node activation (q, k, v after rotary, z,
/// attention probabilities, MLP pre- and post-activations, attn_out, mlp_out, the residual stream entering each
/// block and after the last one) and the last position's logits. Dispose it to free the memory.
/// </summary>
public interface IRunCache : IDisposable
{
    /// <summary>Sequences in the batch.</summary>
    int Batch { get; }

    /// <summary>Tokens per sequence.</summary>
    int SeqLen { get; }
}

/// <summary>
/// Activation gradients of a metric (summed over the batch, so each example's gradient is its own) with respect to
/// every node of a cached run, plus ∂L/∂A of every attention probability (the QK fix needs it). Only activation
/// gradients, never weight gradients.
/// </summary>
public interface IGradientCache : IDisposable
{
    /// <summary>Sequences in the batch.</summary>
    int Batch { get; }

    /// <summary>Tokens per sequence.</summary>
    int SeqLen { get; }

    /// <summary>Layers 0..<see cref="ValidThroughLayer"/> hold gradients of this pass. A full backward fills every
    /// layer; a GradDrop pass that detached layer l fills layers 0..l (above l its gradients equal the full ones).</summary>
    int ValidThroughLayer { get; }
}

/// <summary>One exactly patched run: example <see cref="Example"/> of the base run with every node in
/// <see cref="Nodes"/> replaced by its value in the source run (same example, same position; an <c>@*</c> node at
/// every position).</summary>
/// <param name="Example">Index into the batch of the base and source runs.</param>
/// <param name="Nodes">The node set patched jointly (at least one node).</param>
public readonly record struct PatchRun(int Example, ReadOnlyMemory<Node> Nodes);

/// <summary>How exact patching is executed. <c>default</c> is the fast path; the switches exist to measure it.</summary>
/// <param name="DisablePrefixReuse">Recompute every run from layer 0, position 0 instead of starting at the node's
/// layer and position from the cached base run (same results).</param>
/// <param name="MaxRunsPerBatch">Patched runs executed together (0 = the backend chooses; 1 = no batching).</param>
public readonly record struct PatchingOptions(bool DisablePrefixReuse = false, int MaxRunsPerBatch = 0)
{
    /// <summary>Runs start at the node's layer and position (the default).</summary>
    public bool PrefixReuse => !DisablePrefixReuse;
}

/// <summary>
/// A request to reduce Δactivation·gradient per node: for every selected node n and example e,
/// s = (n(source) − n(base))·∂L/∂n (or the QK-fixed estimate for q and k nodes), and for <c>@*</c> nodes the
/// per-example sum over positions (the all-keys recomputation for k with the QK fix); then
/// <c>sumAbs[id] += w_layer·|s|</c> and <c>sumSigned[id] += w_layer·s</c> summed over examples.
/// </summary>
/// <param name="BaseRun">The run the gradients were taken on.</param>
/// <param name="SourceRun">The run whose activations would be patched in (same batch and length).</param>
/// <param name="Gradients">A backward of <paramref name="BaseRun"/>.</param>
/// <param name="Types">Node types to score.</param>
/// <param name="Positions">Per-position nodes, <c>@*</c> aggregates, or both.</param>
/// <param name="QkFix">Score q and k nodes with the QK fix (exact softmax, linearised after it).</param>
/// <param name="FromLayer">First layer scored.</param>
/// <param name="ToLayer">Last layer scored (≤ the gradients' <see cref="IGradientCache.ValidThroughLayer"/>).</param>
/// <param name="LayerWeights">[Layers] weight of each layer's terms (≥ 0).</param>
public sealed record AttributionRequest(
    IRunCache BaseRun,
    IRunCache SourceRun,
    IGradientCache Gradients,
    NodeTypes Types,
    PositionMode Positions,
    bool QkFix,
    int FromLayer,
    int ToLayer,
    double[] LayerWeights);

/// <summary>
/// The seam between the attribution methods and the hardware: a backend uploads the weights once and
/// executes <b>whole passes</b> over a batch (never single ops), keeping activations and gradients in its own
/// memory and returning only metrics and per-node reductions.
/// Layouts: token ids <c>[batch, seqLen]</c> row-major; logits <c>[batch, seqLen, VocabSize]</c> row-major; node
/// values as <see cref="NodeSpace.Width"/> features; per-node arrays indexed by <see cref="NodeSpace"/> ids.
/// A backend instance is not thread-safe; use one per thread. Caches belong to the backend that made them.
/// </summary>
public interface IBackend : IDisposable
{
    /// <summary>Short name for logs and result files, e.g. "cpu-fp32".</summary>
    string Name { get; }

    /// <summary>The weights this backend runs.</summary>
    ModelWeights Weights { get; }

    /// <summary>Precision of the passes.</summary>
    Precision Precision { get; }

    /// <summary>
    /// Runs the model on <paramref name="batch"/> sequences of <paramref name="seqLen"/> tokens and
    /// writes the logits of every position.
    /// </summary>
    /// <param name="tokenIds">[batch, seqLen] token ids, each in [0, VocabSize).</param>
    /// <param name="batch">Number of sequences (≥ 1).</param>
    /// <param name="seqLen">Tokens per sequence (≥ 1, ≤ the model's maximum).</param>
    /// <param name="logits">[batch, seqLen, VocabSize] output.</param>
    /// <exception cref="InvalidModelInputException">Ids out of range, empty or over-long sequences,
    /// or buffers of the wrong size.</exception>
    /// <exception cref="NonFiniteValueException">A NaN or infinity appeared (the message names the layer).</exception>
    void Forward(ReadOnlySpan<int> tokenIds, int batch, int seqLen, Span<float> logits);

    /// <summary>The largest batch of <paramref name="seqLen"/>-token sequences whose two runs, two gradient caches and
    /// QK-fix tables fit in this backend's memory at once: the attribution session never asks for more, so a batch
    /// that does not fit is split rather than failing.</summary>
    int MaxBatch(int seqLen);

    /// <summary>Runs a batch and keeps every node activation (see <see cref="IRunCache"/>).</summary>
    /// <param name="tokenIds">[batch, seqLen] token ids.</param>
    /// <param name="batch">Sequences (≥ 1).</param>
    /// <param name="seqLen">Tokens per sequence (≥ 1).</param>
    /// <exception cref="InvalidModelInputException">Bad ids or shape.</exception>
    /// <exception cref="NonFiniteValueException">A NaN or infinity appeared.</exception>
    IRunCache Run(ReadOnlySpan<int> tokenIds, int batch, int seqLen);

    /// <summary>Writes the metric of every example of <paramref name="run"/> to <paramref name="values"/> [batch].</summary>
    void Metric(IRunCache run, MetricTargets targets, Span<double> values);

    /// <summary>Allocates a gradient cache for runs shaped like <paramref name="run"/>.</summary>
    IGradientCache CreateGradients(IRunCache run);

    /// <summary>Activation-only backward of Σ_e metric_e through <paramref name="run"/> into <paramref name="gradients"/>
    /// (every layer).</summary>
    /// <exception cref="NonFiniteValueException">A NaN or infinity appeared (the message names the layer).</exception>
    void Backward(IRunCache run, MetricTargets targets, IGradientCache gradients);

    /// <summary>
    /// GradDrop: the backward with layer <paramref name="droppedLayer"/>'s write to the residual stream detached (its
    /// gradient flows only through the skip path, nothing into the block). Gradients above the dropped layer are
    /// unchanged, so the pass starts from <paramref name="full"/>'s residual gradient there and fills layers
    /// 0..droppedLayer of <paramref name="gradients"/> (the dropped layer's own nodes get zero, its resid_pre the skip
    /// gradient).
    /// </summary>
    void BackwardDroppingLayer(IRunCache run, IGradientCache full, int droppedLayer, IGradientCache gradients);

    /// <summary>Accumulates the attribution products of <paramref name="request"/> (see <see cref="AttributionRequest"/>).</summary>
    /// <param name="request">What to reduce.</param>
    /// <param name="sumAbs">[NodeSpace.Count] Σ_e w·|s|, added to.</param>
    /// <param name="sumSigned">[NodeSpace.Count] Σ_e w·s, added to.</param>
    void AccumulateAttribution(AttributionRequest request, Span<double> sumAbs, Span<double> sumSigned);

    /// <summary>
    /// Exact activation patching: the metric of each patched run (see <see cref="PatchRun"/>). Runs start from the
    /// cached base run at the earliest patched layer and position (earlier positions cannot change and cached keys
    /// and values serve them) and unembed only the columns the metric needs.
    /// </summary>
    /// <param name="baseRun">The run being patched.</param>
    /// <param name="sourceRun">The run the patched values come from.</param>
    /// <param name="runs">The patched runs.</param>
    /// <param name="targets">The metric (batch of the base run).</param>
    /// <param name="values">[runs.Length] metric of each patched run.</param>
    /// <param name="options">Execution switches (results do not depend on them).</param>
    void PatchedMetric(IRunCache baseRun, IRunCache sourceRun, ReadOnlySpan<PatchRun> runs, MetricTargets targets,
        Span<double> values, PatchingOptions options = default);

    /// <summary>Copies the value of a per-position node of one example of a run.</summary>
    /// <param name="run">The cached run.</param>
    /// <param name="example">Index into its batch.</param>
    /// <param name="node">A per-position node (not <c>@*</c>).</param>
    /// <param name="values">[NodeSpace.Width(node.Type)] output.</param>
    void ReadNode(IRunCache run, int example, Node node, Span<double> values);

    /// <summary>Copies ∂L/∂n of a per-position node of one example from a gradient cache (layers the cache holds).</summary>
    /// <param name="gradients">A backward's result.</param>
    /// <param name="example">Index into its batch.</param>
    /// <param name="node">A per-position node in a layer ≤ <see cref="IGradientCache.ValidThroughLayer"/>.</param>
    /// <param name="values">[NodeSpace.Width(node.Type)] output.</param>
    void ReadGradient(IGradientCache gradients, int example, Node node, Span<double> values);

    /// <summary>Overwrites a node's value in a cache. Downstream activations are not recomputed: a cache written to is
    /// only meaningful as the source of patched runs (zero/mean ablation, finite differences).</summary>
    void WriteNode(IRunCache run, int example, Node node, ReadOnlySpan<double> values);

    /// <summary>A deep copy of <paramref name="run"/> (to write node values into without touching the original).</summary>
    IRunCache Clone(IRunCache run);
}
