using ILGPU;

namespace AtpFast.Kernels;

/// <summary>
/// Metric-aware unembedding: logit = h·U[v] + b[v] for the vocabulary columns a metric reads — the answer and wrong
/// token of each row's example for the logit differences (<c>columns</c> holds them), every column otherwise. One
/// thread per (row, column), features in order. FLOPs: 2·d per logit; bytes: 4·(2d + 1) per logit.
/// </summary>
public static class UnembedKernel
{
    /// <param name="index">(row, column) over rows·count.</param>
    /// <param name="weights">The slab.</param>
    /// <param name="h">[rows, d] final-norm outputs.</param>
    /// <param name="columns">[rows, count] vocabulary ids, or empty for columns 0..count−1.</param>
    /// <param name="logits">[rows, count] output.</param>
    /// <param name="d">Model width.</param>
    /// <param name="count">Columns per row.</param>
    /// <param name="unembedOffset">Offset of U [vocab, d].</param>
    /// <param name="biasOffset">Offset of the bias [vocab].</param>
    public static void Run(Index1D index, ArrayView<float> weights, ArrayView<float> h, ArrayView<int> columns, ArrayView<float> logits,
        int d, int count, int unembedOffset, int biasOffset)
    {
        int row = index / count, j = index % count;
        int v = columns.Length > 0 ? columns[index] : j;
        float dot = 0;
        for (int f = 0; f < d; f++) dot += h[row * d + f] * weights[unembedOffset + v * d + f];
        logits[index] = dot + weights[biasOffset + v];
    }
}
