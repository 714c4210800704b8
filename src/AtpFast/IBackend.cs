namespace AtpFast;

/// <summary>Arithmetic precision of a backend's passes. Every result records the one it used.</summary>
public enum Precision
{
    /// <summary>IEEE fp32 everywhere (the reference).</summary>
    Float32,
    /// <summary>IEEE fp64 everywhere (CPU only; used for gradient checks).</summary>
    Float64,
}

/// <summary>
/// The seam between the attribution methods and the hardware: a backend uploads the weights once and
/// executes <b>whole passes</b> over a batch (never single ops), keeping its activations in its own arena.
/// Layouts: token ids <c>[batch, seqLen]</c> row-major; logits <c>[batch, seqLen, VocabSize]</c> row-major.
/// A backend instance is not thread-safe; use one per thread.
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
    void Forward(ReadOnlySpan<int> tokenIds, int batch, int seqLen, Span<float> logits);
}
