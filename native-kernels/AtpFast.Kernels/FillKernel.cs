using ILGPU;

namespace AtpFast.Kernels;

/// <summary>Sets every element to a value (clears gradient buffers). Bytes: 4 per element.</summary>
public static class FillKernel
{
    /// <param name="index">Element.</param>
    /// <param name="y">Buffer.</param>
    /// <param name="value">Value.</param>
    public static void Run(Index1D index, ArrayView<float> y, float value) => y[index] = value;
}
