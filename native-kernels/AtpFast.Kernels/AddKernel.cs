using ILGPU;

namespace AtpFast.Kernels;

/// <summary>y = a + b element-wise (the parallel residual's block output and the backward's gradient sums).
/// FLOPs: 1 per element; bytes: 12 per element.</summary>
public static class AddKernel
{
    /// <param name="index">Element.</param>
    /// <param name="a">First term.</param>
    /// <param name="b">Second term.</param>
    /// <param name="y">Output (may alias a).</param>
    public static void Run(Index1D index, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y) => y[index] = a[index] + b[index];
}
