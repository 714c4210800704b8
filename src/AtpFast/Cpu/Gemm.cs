using System.Buffers;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AtpFast.Cpu;

/// <summary>
/// fp32 matrix product with bias, C[M,N] = A[M,K]·B[K,N] + bias[N], all row-major. B is packed into panels of
/// 16 columns (K×16, contiguous) and each 6×16 block of C is accumulated in twelve AVX registers (a 6×16
/// register-tiled FMA microkernel: per k, two B loads, six broadcasts of A, twelve FMAs). Work is split over
/// the column panels. Machines without AVX2/FMA use the same loop structure with <see cref="System.Numerics.Tensors.TensorPrimitives"/>.
/// FLOPs: 2·M·K·N; bytes: 4·(M·K + K·N + M·N) at least.
/// </summary>
internal static class Gemm
{
    private const int PanelWidth = 16;
    private const int TileRows = 6;

    /// <summary>C = A·B + bias.</summary>
    /// <param name="a">[m, k] row-major.</param>
    /// <param name="b">The slab (or any array) holding B at <paramref name="bOffset"/>, [k, n] row-major.</param>
    /// <param name="bias">Array holding bias[n] at <paramref name="biasOffset"/>.</param>
    /// <param name="c">[m, n] row-major output (overwritten).</param>
    /// <param name="m">Rows of A and C.</param>
    /// <param name="k">Columns of A, rows of B.</param>
    /// <param name="bOffset">First element of B in <paramref name="b"/>.</param>
    /// <param name="n">Columns of B and C.</param>
    /// <param name="biasOffset">First element of the bias in <paramref name="bias"/>.</param>
    /// <param name="parallel">Degree of parallelism over column panels.</param>
    public static void Multiply(float[] a, int m, int k, float[] b, int bOffset, int n, float[] bias, int biasOffset, float[] c, ParallelOptions parallel)
    {
        if (!(Avx2.IsSupported && Fma.IsSupported))
        {
            Portable(a, m, k, b, bOffset, n, bias, biasOffset, c, parallel);
            return;
        }
        int panels = (n + PanelWidth - 1) / PanelWidth;
        Parallel.For(0, panels, parallel,
            () => ArrayPool<float>.Shared.Rent(k * PanelWidth + k),
            (panel, _, scratch) =>
            {
                Panel(a, m, k, b, bOffset, n, bias, biasOffset, c, panel * PanelWidth, scratch);
                return scratch;
            },
            scratch => ArrayPool<float>.Shared.Return(scratch));
    }

    private static unsafe void Panel(float[] a, int m, int k, float[] b, int bOffset, int n, float[] bias, int biasOffset, float[] c, int col0, float[] scratch)
    {
        int width = Math.Min(PanelWidth, n - col0);
        // Pack B[:, col0 .. col0+16) into scratch[0 .. k·16), zero-padding a ragged last panel; scratch[k·16 ..)
        // is a zero row standing in for the missing rows of a ragged last tile.
        for (int kk = 0; kk < k; kk++)
        {
            var dst = scratch.AsSpan(kk * PanelWidth, PanelWidth);
            b.AsSpan(bOffset + kk * n + col0, width).CopyTo(dst);
            if (width < PanelWidth) dst[width..].Clear();
        }
        scratch.AsSpan(k * PanelWidth, k).Clear();

        Span<float> biasPanel = stackalloc float[PanelWidth];
        biasPanel.Clear();
        bias.AsSpan(biasOffset + col0, width).CopyTo(biasPanel);
        Span<float> tile = stackalloc float[TileRows * PanelWidth];

        fixed (float* pa = a, pb = scratch, pc = c, pbias = biasPanel, ptile = tile)
        {
            float* zeroRow = pb + k * PanelWidth;
            for (int row0 = 0; row0 < m; row0 += TileRows)
            {
                int rows = Math.Min(TileRows, m - row0);
                float* a0 = pa + (long)row0 * k;
                float* a1 = rows > 1 ? a0 + k : zeroRow;
                float* a2 = rows > 2 ? a0 + 2L * k : zeroRow;
                float* a3 = rows > 3 ? a0 + 3L * k : zeroRow;
                float* a4 = rows > 4 ? a0 + 4L * k : zeroRow;
                float* a5 = rows > 5 ? a0 + 5L * k : zeroRow;
                var bl = Avx.LoadVector256(pbias);
                var bh = Avx.LoadVector256(pbias + 8);
                Vector256<float> c00 = bl, c01 = bh, c10 = bl, c11 = bh, c20 = bl, c21 = bh;
                Vector256<float> c30 = bl, c31 = bh, c40 = bl, c41 = bh, c50 = bl, c51 = bh;
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
                if (rows == TileRows && width == PanelWidth)
                {
                    float* out0 = pc + (long)row0 * n + col0;
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
                    new Span<float>(ptile + r * PanelWidth, width).CopyTo(new Span<float>(pc + (long)(row0 + r) * n + col0, width));
            }
        }
    }

    /// <summary>Row-parallel axpy form for machines without AVX2/FMA.</summary>
    private static void Portable(float[] a, int m, int k, float[] b, int bOffset, int n, float[] bias, int biasOffset, float[] c, ParallelOptions parallel)
    {
        Parallel.For(0, m, parallel, r =>
        {
            var cr = c.AsSpan(r * n, n);
            bias.AsSpan(biasOffset, n).CopyTo(cr);
            for (int kk = 0; kk < k; kk++)
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(b.AsSpan(bOffset + kk * n, n), a[r * k + kk], cr, cr);
        });
    }
}
