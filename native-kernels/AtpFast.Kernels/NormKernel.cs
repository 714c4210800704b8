using ILGPU;

namespace AtpFast.Kernels;

/// <summary>Parameters of <see cref="NormKernel"/>.</summary>
/// <param name="D">Row width.</param>
/// <param name="WeightOffset">Offset of the norm weight [d] in the slab.</param>
/// <param name="BiasOffset">Offset of the bias [d] (LayerNorm only).</param>
/// <param name="Eps">Epsilon inside the square root.</param>
/// <param name="LayerNorm">LayerNorm (true) or RMSNorm.</param>
/// <param name="AddInput">y = norm(x + add), and x + add is written to <c>sum</c> (the residual add fused).</param>
/// <param name="Input">Where compact row j reads x (and writes sum).</param>
public readonly record struct NormShape(int D, int WeightOffset, int BiasOffset, float Eps, Flag LayerNorm, Flag AddInput, RowMap Input);

/// <summary>
/// LayerNorm ((x − mean)/√(var + eps)·w + b) or RMSNorm (x/√(mean x² + eps)·w) of each row, optionally of x + add with
/// the sum written out (the sequential residual's "mid" and the MLP norm in one pass). One thread per row, features
/// in order, so a row's result does not depend on the rest of the batch. FLOPs: ~8·d per row; bytes: 4·d·(2–4) per row.
/// </summary>
public static class NormKernel
{
    /// <param name="row">Compact row.</param>
    /// <param name="weights">The weight slab.</param>
    /// <param name="x">Input rows (addressed through <see cref="NormShape.Input"/>).</param>
    /// <param name="add">Rows added to x when <see cref="NormShape.AddInput"/> (compact).</param>
    /// <param name="sum">x + add written here (strided like x) when <see cref="NormShape.AddInput"/>.</param>
    /// <param name="y">[rows, d] normalised output (compact).</param>
    /// <param name="s">Shape.</param>
    public static void Run(Index1D row, ArrayView<float> weights, ArrayView<float> x, ArrayView<float> add, ArrayView<float> sum,
        ArrayView<float> y, NormShape s)
    {
        int d = s.D, src = s.Input.Row(row) * d, dst = row * d;
        float total = 0;
        for (int f = 0; f < d; f++)
        {
            float v = x[src + f];
            if (s.AddInput)
            {
                v += add[dst + f];
                sum[src + f] = v;
            }
            total += v;
        }
        float mean = s.LayerNorm ? total / d : 0f;
        float squares = 0;
        for (int f = 0; f < d; f++)
        {
            float v = (s.AddInput ? sum[src + f] : x[src + f]) - mean;
            squares += v * v;
        }
        float rstd = 1f / MathF.Sqrt(squares / d + s.Eps);
        for (int f = 0; f < d; f++)
        {
            float v = ((s.AddInput ? sum[src + f] : x[src + f]) - mean) * rstd * weights[s.WeightOffset + f];
            y[dst + f] = s.LayerNorm ? v + weights[s.BiasOffset + f] : v;
        }
    }
}
