using ILGPU;

namespace AtpFast.Kernels;

/// <summary>Parameters of <see cref="NormKernel"/>.</summary>
/// <param name="D">Row width.</param>
/// <param name="WeightOffset">Offset of the norm weight [d] in the slab.</param>
/// <param name="BiasOffset">Offset of the bias [d] (LayerNorm only).</param>
/// <param name="Eps">Epsilon inside the square root.</param>
/// <param name="LayerNorm">LayerNorm (true) or RMSNorm.</param>
/// <param name="Input">Where compact row j reads x: the rows a block step computes are read in place from the
/// residual buffer, without a gather.</param>
public readonly record struct NormShape(int D, int WeightOffset, int BiasOffset, float Eps, Flag LayerNorm, RowMap Input);

/// <summary>
/// LayerNorm ((x − mean)/√(var + eps)·w + b) or RMSNorm (x/√(mean x² + eps)·w) of each row (the residual add before it
/// is fused into the output projection's epilogue). One thread per row, features in order, so a row's result does not
/// depend on the rest of the batch. FLOPs: ~8·d per row; bytes: 4·d·3 per row.
/// </summary>
public static class NormKernel
{
    /// <param name="row">Compact row.</param>
    /// <param name="weights">The weight slab.</param>
    /// <param name="x">Input rows (addressed through <see cref="NormShape.Input"/>).</param>
    /// <param name="y">[rows, d] normalised output (compact).</param>
    /// <param name="s">Shape.</param>
    public static void Run(Index1D row, ArrayView<float> weights, ArrayView<float> x, ArrayView<float> y, NormShape s)
    {
        int d = s.D, src = s.Input.Row(row) * d, dst = row * d;
        float total = 0;
        for (int f = 0; f < d; f++) total += x[src + f];
        float mean = s.LayerNorm ? total / d : 0f;
        float squares = 0;
        for (int f = 0; f < d; f++)
        {
            float v = x[src + f] - mean;
            squares += v * v;
        }
        float rstd = 1f / MathF.Sqrt(squares / d + s.Eps);
        for (int f = 0; f < d; f++)
        {
            float v = (x[src + f] - mean) * rstd * weights[s.WeightOffset + f];
            y[dst + f] = s.LayerNorm ? v + weights[s.BiasOffset + f] : v;
        }
    }
}
