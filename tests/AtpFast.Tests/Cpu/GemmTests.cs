using AtpFast.Cpu;

namespace AtpFast.Tests.Cpu;

/// <summary>The register-tiled GEMM equals a float64 triple loop on awkward shapes (ragged tiles and panels).</summary>
public sealed class GemmTests
{
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 13, 5)]
    [InlineData(6, 16, 16)]
    [InlineData(13, 31, 33)]
    [InlineData(64, 64, 172)]
    [InlineData(25, 100, 47)]
    public void Matches_a_float64_reference(int m, int k, int n)
    {
        var rng = new Random(m * 1000 + k * 10 + n);
        float[] a = Enumerable.Range(0, m * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        // B and the bias sit at offsets inside a larger array, as in the weight slab.
        const int bOffset = 5, biasOffset = 3;
        float[] slab = Enumerable.Range(0, bOffset + k * n + 7).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        float[] bias = Enumerable.Range(0, biasOffset + n).Select(_ => (float)rng.NextDouble()).ToArray();
        float[] c = Enumerable.Repeat(float.NaN, m * n).ToArray();
        Gemm.Multiply(a, m, k, slab, bOffset, n, bias, biasOffset, c, new ParallelOptions { MaxDegreeOfParallelism = 2 });
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double expected = bias[biasOffset + j];
                for (int kk = 0; kk < k; kk++) expected += (double)a[i * k + kk] * slab[bOffset + kk * n + j];
                Assert.True(Math.Abs(expected - c[i * n + j]) <= 1e-5 * (1 + k), $"C[{i},{j}] = {c[i * n + j]}, expected {expected}");
            }
        }
    }
}
