using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AtpFast.Cpu;

/// <summary>
/// Matrix product C[M,N] = A[M,K]·B + (C or bias[N]), all row-major, where B is either [K,N] or the transpose of a
/// [N,K] matrix (the activation-only backward multiplies by Wᵀ without materialising it). fp32 on AVX2/FMA: B is
/// packed into panels of 16 columns (K×16, contiguous; the transpose is taken while packing) and each 6×16 block
/// of C is accumulated in twelve AVX registers (per k: two B loads, six broadcasts of A, twelve FMAs), in parallel
/// over the column panels. Other types and machines use row-wise vector loops. Every element of C is accumulated
/// over k in the same order whatever M is, so a row computed alone equals the same row computed in a batch.
/// FLOPs: 2·M·K·N; bytes: 4·(M·K + K·N + M·N) at least.
/// </summary>
internal static class Gemm
{
    private const int PanelWidth = 16;
    private const int TileRows = 6;

    /// <summary>C = A·B + bias, or C += A·B when <paramref name="accumulate"/>.</summary>
    /// <param name="a">[m, k] row-major.</param>
    /// <param name="m">Rows of A and C.</param>
    /// <param name="k">Columns of A.</param>
    /// <param name="b">The slab (or any array) holding B at <paramref name="bOffset"/>: [k, n] row-major, or
    /// [n, k] row-major when <paramref name="transposeB"/>.</param>
    /// <param name="bOffset">First element of B in <paramref name="b"/>.</param>
    /// <param name="n">Columns of C.</param>
    /// <param name="bias">Array holding bias[n] at <paramref name="biasOffset"/>; null for none.</param>
    /// <param name="biasOffset">First element of the bias.</param>
    /// <param name="c">[m, n] row-major output.</param>
    /// <param name="parallel">Degree of parallelism.</param>
    /// <param name="transposeB">Multiply by the transpose of the [n, k] matrix stored at <paramref name="bOffset"/>.</param>
    /// <param name="accumulate">Add to C instead of overwriting it (the bias is then ignored).</param>
    public static void Multiply<T>(T[] a, int m, int k, T[] b, int bOffset, int n, T[]? bias, int biasOffset, T[] c,
        ParallelOptions parallel, bool transposeB = false, bool accumulate = false)
        where T : unmanaged, INumber<T>
    {
        if (m == 0 || n == 0) return;
        if (typeof(T) == typeof(float) && Avx2.IsSupported && Fma.IsSupported)
        {
            Packed((float[])(object)a, m, k, (float[])(object)b, bOffset, n, (float[]?)(object?)bias, biasOffset,
                (float[])(object)c, parallel, transposeB, accumulate);
            return;
        }
        Portable(a, m, k, b, bOffset, n, bias, biasOffset, c, parallel, transposeB, accumulate);
    }

    private static void Packed(float[] a, int m, int k, float[] b, int bOffset, int n, float[]? bias, int biasOffset,
        float[] c, ParallelOptions parallel, bool transposeB, bool accumulate)
    {
        int panels = (n + PanelWidth - 1) / PanelWidth;
        Parallel.For(0, panels, parallel,
            () => ArrayPool<float>.Shared.Rent(k * PanelWidth + k),
            (panel, _, scratch) =>
            {
                Panel(a, m, k, b, bOffset, n, bias, biasOffset, c, panel * PanelWidth, scratch, transposeB, accumulate);
                return scratch;
            },
            scratch => ArrayPool<float>.Shared.Return(scratch));
    }

    private static unsafe void Panel(float[] a, int m, int k, float[] b, int bOffset, int n, float[]? bias, int biasOffset,
        float[] c, int col0, float[] scratch, bool transposeB, bool accumulate)
    {
        int width = Math.Min(PanelWidth, n - col0);
        // Pack B[:, col0 .. col0+16) into scratch[0 .. k·16), zero-padding a ragged last panel; scratch[k·16 ..)
        // is a zero row standing in for the missing rows of a ragged last tile.
        if (transposeB)
        {
            scratch.AsSpan(0, k * PanelWidth).Clear();
            for (int j = 0; j < width; j++)
            {
                var row = b.AsSpan(bOffset + (col0 + j) * k, k);
                for (int kk = 0; kk < k; kk++) scratch[kk * PanelWidth + j] = row[kk];
            }
        }
        else
        {
            for (int kk = 0; kk < k; kk++)
            {
                var dst = scratch.AsSpan(kk * PanelWidth, PanelWidth);
                b.AsSpan(bOffset + kk * n + col0, width).CopyTo(dst);
                if (width < PanelWidth) dst[width..].Clear();
            }
        }
        scratch.AsSpan(k * PanelWidth, k).Clear();

        Span<float> biasPanel = stackalloc float[PanelWidth];
        biasPanel.Clear();
        if (bias is not null && !accumulate) bias.AsSpan(biasOffset + col0, width).CopyTo(biasPanel);
        Span<float> tile = stackalloc float[TileRows * PanelWidth];

        fixed (float* pa = a, pb = scratch, pc = c, pbias = biasPanel, ptile = tile)
        {
            float* zeroRow = pb + k * PanelWidth;
            for (int row0 = 0; row0 < m; row0 += TileRows)
            {
                int rows = Math.Min(TileRows, m - row0);
                bool full = rows == TileRows && width == PanelWidth;
                float* a0 = pa + (long)row0 * k;
                float* a1 = rows > 1 ? a0 + k : zeroRow;
                float* a2 = rows > 2 ? a0 + 2L * k : zeroRow;
                float* a3 = rows > 3 ? a0 + 3L * k : zeroRow;
                float* a4 = rows > 4 ? a0 + 4L * k : zeroRow;
                float* a5 = rows > 5 ? a0 + 5L * k : zeroRow;
                float* out0 = pc + (long)row0 * n + col0;
                Vector256<float> c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
                if (accumulate)
                {
                    // Start from C: directly for a full tile, through the zero-padded stack tile for a ragged one.
                    float* src = out0;
                    long stride = n;
                    if (!full)
                    {
                        tile.Clear();
                        for (int r = 0; r < rows; r++)
                            new Span<float>(out0 + r * (long)n, width).CopyTo(new Span<float>(ptile + r * PanelWidth, width));
                        src = ptile;
                        stride = PanelWidth;
                    }
                    c00 = Avx.LoadVector256(src); c01 = Avx.LoadVector256(src + 8);
                    c10 = Avx.LoadVector256(src + stride); c11 = Avx.LoadVector256(src + stride + 8);
                    c20 = Avx.LoadVector256(src + 2 * stride); c21 = Avx.LoadVector256(src + 2 * stride + 8);
                    c30 = Avx.LoadVector256(src + 3 * stride); c31 = Avx.LoadVector256(src + 3 * stride + 8);
                    c40 = Avx.LoadVector256(src + 4 * stride); c41 = Avx.LoadVector256(src + 4 * stride + 8);
                    c50 = Avx.LoadVector256(src + 5 * stride); c51 = Avx.LoadVector256(src + 5 * stride + 8);
                }
                else
                {
                    var bl = Avx.LoadVector256(pbias);
                    var bh = Avx.LoadVector256(pbias + 8);
                    c00 = bl; c01 = bh; c10 = bl; c11 = bh; c20 = bl; c21 = bh;
                    c30 = bl; c31 = bh; c40 = bl; c41 = bh; c50 = bl; c51 = bh;
                }
                float* pp = pb;
                for (int kk = 0; kk < k; kk++, pp += PanelWidth)
                {
                    var b0 = Avx.LoadVector256(pp);
                    var b1 = Avx.LoadVector256(pp + 8);
                    var x = Vector256.Create(a0[kk]);
                    c00 = Fma.MultiplyAdd(x, b0, c00); c01 = Fma.MultiplyAdd(x, b1, c01);
                    x = Vector256.Create(a1[kk]);
                    c10 = Fma.MultiplyAdd(x, b0, c10); c11 = Fma.MultiplyAdd(x, b1, c11);
                    x = Vector256.Create(a2[kk]);
                    c20 = Fma.MultiplyAdd(x, b0, c20); c21 = Fma.MultiplyAdd(x, b1, c21);
                    x = Vector256.Create(a3[kk]);
                    c30 = Fma.MultiplyAdd(x, b0, c30); c31 = Fma.MultiplyAdd(x, b1, c31);
                    x = Vector256.Create(a4[kk]);
                    c40 = Fma.MultiplyAdd(x, b0, c40); c41 = Fma.MultiplyAdd(x, b1, c41);
                    x = Vector256.Create(a5[kk]);
                    c50 = Fma.MultiplyAdd(x, b0, c50); c51 = Fma.MultiplyAdd(x, b1, c51);
                }
                if (full)
                {
                    Avx.Store(out0, c00); Avx.Store(out0 + 8, c01); out0 += n;
                    Avx.Store(out0, c10); Avx.Store(out0 + 8, c11); out0 += n;
                    Avx.Store(out0, c20); Avx.Store(out0 + 8, c21); out0 += n;
                    Avx.Store(out0, c30); Avx.Store(out0 + 8, c31); out0 += n;
                    Avx.Store(out0, c40); Avx.Store(out0 + 8, c41); out0 += n;
                    Avx.Store(out0, c50); Avx.Store(out0 + 8, c51);
                    continue;
                }
                // Ragged tile: spill to the stack tile and copy the valid part.
                Avx.Store(ptile, c00); Avx.Store(ptile + 8, c01);
                Avx.Store(ptile + 16, c10); Avx.Store(ptile + 24, c11);
                Avx.Store(ptile + 32, c20); Avx.Store(ptile + 40, c21);
                Avx.Store(ptile + 48, c30); Avx.Store(ptile + 56, c31);
                Avx.Store(ptile + 64, c40); Avx.Store(ptile + 72, c41);
                Avx.Store(ptile + 80, c50); Avx.Store(ptile + 88, c51);
                for (int r = 0; r < rows; r++)
                    new Span<float>(ptile + r * PanelWidth, width).CopyTo(new Span<float>(out0 + (long)r * n, width));
            }
        }
    }

    /// <summary>Row-parallel vector loops for fp64 and for machines without AVX2/FMA.</summary>
    private static void Portable<T>(T[] a, int m, int k, T[] b, int bOffset, int n, T[]? bias, int biasOffset, T[] c,
        ParallelOptions parallel, bool transposeB, bool accumulate)
        where T : unmanaged, INumber<T>
    {
        Parallel.For(0, m, parallel, r =>
        {
            var cr = c.AsSpan(r * n, n);
            var ar = a.AsSpan(r * k, k);
            if (!accumulate)
            {
                if (bias is null) cr.Clear();
                else bias.AsSpan(biasOffset, n).CopyTo(cr);
            }
            if (transposeB)
            {
                for (int j = 0; j < n; j++) cr[j] += Simd.Dot<T>(ar, b.AsSpan(bOffset + j * k, k));
            }
            else
            {
                for (int kk = 0; kk < k; kk++)
                    TensorPrimitives.MultiplyAdd(b.AsSpan(bOffset + kk * n, n), ar[kk], cr, cr);
            }
        });
    }
}
