using ILGPU;

namespace AtpFast.Kernels;

/// <summary>
/// Embedding: x[r, f] = E[token[r], f] + P[r mod T, f] (the positional row only for models with learned positions).
/// One thread per output element. FLOPs: rows·d adds; bytes: 4·rows·d·3 (two reads, one write) + the ids.
/// </summary>
public static class EmbeddingKernel
{
    /// <param name="index">Element of x [rows, d].</param>
    /// <param name="weights">The weight slab.</param>
    /// <param name="tokens">[rows] token ids.</param>
    /// <param name="x">[rows, d] output.</param>
    /// <param name="d">Model width.</param>
    /// <param name="tokenOffset">Offset of the token embedding [vocab, d] in the slab.</param>
    /// <param name="positionOffset">Offset of the positional embedding [positions, d], or −1 when the model has none.</param>
    /// <param name="seqLen">Tokens per sequence.</param>
    public static void Run(Index1D index, ArrayView<float> weights, ArrayView<int> tokens, ArrayView<float> x, int d,
        int tokenOffset, int positionOffset, int seqLen)
    {
        int row = index / d, f = index % d;
        float value = weights[tokenOffset + tokens[row] * d + f];
        if (positionOffset >= 0) value += weights[positionOffset + row % seqLen * d + f];
        x[index] = value;
    }
}
