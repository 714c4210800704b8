using ILGPU;

namespace AtpFast.Kernels;

/// <summary>
/// Norm backward, activations only: dx += rstd·(ĝ − mean ĝ − x̂·mean(ĝ·x̂)) for LayerNorm and rstd·(ĝ − x̂·mean(ĝ·x̂)) for
/// RMSNorm, with ĝ = dy·w and the statistics recomputed from x (x̂ the normalised input). x may be the sum of two
/// buffers (the sequential residual's mid = resid_pre + attn_out is not stored). One thread per row.
/// FLOPs: ~14·d per row; bytes: 4·d·4–5 per row.
/// </summary>
public static class NormBackwardKernel
{
    /// <param name="row">Row.</param>
    /// <param name="weights">The weight slab.</param>
    /// <param name="x">[rows, d] the norm's input, or its first term.</param>
    /// <param name="xAdd">[rows, d] the second term when <paramref name="addInput"/>.</param>
    /// <param name="dy">[rows, d] ∂L/∂output (compact rows, see <paramref name="input"/>).</param>
    /// <param name="dx">[rows, d] accumulated ∂L/∂input (strided like x).</param>
    /// <param name="d">Row width.</param>
    /// <param name="weightOffset">Offset of the norm weight.</param>
    /// <param name="eps">Epsilon.</param>
    /// <param name="layerNorm">LayerNorm or RMSNorm.</param>
    /// <param name="addInput">x is x + xAdd.</param>
    /// <param name="input">Where compact row j reads x and writes dx.</param>
    public static void Run(Index1D row, ArrayView<float> weights, ArrayView<float> x, ArrayView<float> xAdd, ArrayView<float> dy,
        ArrayView<float> dx, int d, int weightOffset, float eps, Flag layerNorm, Flag addInput, RowMap input)
    {
        int src = input.Row(row) * d, g = row * d;
        float total = 0;
        for (int f = 0; f < d; f++) total += addInput ? x[src + f] + xAdd[src + f] : x[src + f];
        float mean = layerNorm ? total / d : 0f;
        float squares = 0;
        for (int f = 0; f < d; f++)
        {
            float v = (addInput ? x[src + f] + xAdd[src + f] : x[src + f]) - mean;
            squares += v * v;
        }
        float rstd = 1f / MathF.Sqrt(squares / d + eps);
        float meanG = 0, meanGx = 0;
        for (int f = 0; f < d; f++)
        {
            float gh = dy[g + f] * weights[weightOffset + f];
            float xh = ((addInput ? x[src + f] + xAdd[src + f] : x[src + f]) - mean) * rstd;
            meanG += gh;
            meanGx += gh * xh;
        }
        meanG = layerNorm ? meanG / d : 0f;
        meanGx /= d;
        for (int f = 0; f < d; f++)
        {
            float gh = dy[g + f] * weights[weightOffset + f];
            float xh = ((addInput ? x[src + f] + xAdd[src + f] : x[src + f]) - mean) * rstd;
            dx[src + f] += rstd * (gh - meanG - xh * meanGx);
        }
    }
}
