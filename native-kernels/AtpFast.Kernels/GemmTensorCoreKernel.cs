using ILGPU;
using ILGPU.Runtime.Cuda;

namespace AtpFast.Kernels;

/// <summary>
/// Tensor-core GEMMs with fp32 accumulation: TF32 (<c>mma.sync.aligned.m16n8k8</c>, inputs rounded with
/// <c>cvt.rna.tf32.f32</c>) and BF16 (<c>m16n8k16</c>, inputs packed two per register with <c>cvt.rn.bf16x2.f32</c>).
/// A group of 4 warps computes a 32×32 tile of C; each warp a 16×16 block as two 16×8 fragments, from k-slices of A
/// and B staged in shared memory. Fragment ownership (lane l, g = l/4, q = l mod 4), per the PTX ISA:
/// TF32 A a_r = A[g + 8(r mod 2)][q + 4⌊r/2⌋], B b_r = B[q + 4r][g]; BF16 A a_r packs A[g + 8(r mod 2)][2w], [2w+1] with
/// w = q + 4⌊r/2⌋, B b_r packs B[2w][g], [2w+1][g] with w = q + 4r (lower k in the lower half); C c_r =
/// C[g + 8⌊r/2⌋][2q + (r mod 2)]. Where <see cref="CudaAsm.IsSupported"/> is false (ILGPU's CPU accelerator, warp
/// size 32) the same fragments are multiplied by an emulation built from warp shuffles with the same input rounding,
/// so the tiling and fragment bookkeeping are tested without a GPU. Epilogues as <see cref="GemmKernel"/>.
/// FLOPs: 2·M·K·N; global bytes: 4·(M·K·N/32·2 + M·N).
/// </summary>
public static class GemmTensorCoreKernel
{
    /// <summary>Tile of C per group.</summary>
    public const int Tile = 32;
    /// <summary>Threads per group (4 warps).</summary>
    public const int Threads = 128;

    /// <summary>TF32 inputs, k-slices of 8.</summary>
    public static void Tf32(ArrayView<float> a, ArrayView<float> weights, ArrayView<float> c, ArrayView<float> c2,
        ArrayView<float> aux, GemmShape s) => Run(a, weights, c, c2, aux, s, bf16: false);

    /// <summary>BF16 inputs, k-slices of 16.</summary>
    public static void Bf16(ArrayView<float> a, ArrayView<float> weights, ArrayView<float> c, ArrayView<float> c2,
        ArrayView<float> aux, GemmShape s) => Run(a, weights, c, c2, aux, s, bf16: true);

    private static void Run(ArrayView<float> a, ArrayView<float> weights, ArrayView<float> c, ArrayView<float> c2,
        ArrayView<float> aux, GemmShape s, bool bf16)
    {
        int depth = bf16 ? 16 : 8;
        var tileA = SharedMemory.Allocate<float>(Tile * 16); // [32][depth]
        var tileB = SharedMemory.Allocate<float>(16 * Tile); // [depth][32]
        int t = Group.IdxX, warp = t / 32, lane = t % 32, g = lane / 4, q = lane % 4;
        int row0 = Grid.IdxY * Tile, col0 = Grid.IdxX * Tile;
        int wr = warp / 2 * 16, wc = warp % 2 * 16;
        float d0 = 0, d1 = 0, d2 = 0, d3 = 0, e0 = 0, e1 = 0, e2 = 0, e3 = 0; // fragments of columns wc..wc+7, wc+8..wc+15
        for (int k0 = 0; k0 < s.K; k0 += depth)
        {
            for (int e = t; e < Tile * depth; e += Threads)
            {
                int r = e / depth, k = e % depth;
                tileA[r * depth + k] = row0 + r < s.M && k0 + k < s.K ? a[(row0 + r) * s.K + k0 + k] : 0f;
                int kb = e / Tile, n = e % Tile;
                tileB[kb * Tile + n] = k0 + kb < s.K && col0 + n < s.N ? weights[s.BIndex(k0 + kb, col0 + n)] : 0f;
            }
            Group.Barrier();
            if (bf16)
            {
                uint a0 = PackBf16(tileA[(wr + g) * 16 + 2 * q], tileA[(wr + g) * 16 + 2 * q + 1]);
                uint a1 = PackBf16(tileA[(wr + g + 8) * 16 + 2 * q], tileA[(wr + g + 8) * 16 + 2 * q + 1]);
                uint a2 = PackBf16(tileA[(wr + g) * 16 + 2 * q + 8], tileA[(wr + g) * 16 + 2 * q + 9]);
                uint a3 = PackBf16(tileA[(wr + g + 8) * 16 + 2 * q + 8], tileA[(wr + g + 8) * 16 + 2 * q + 9]);
                uint b0 = PackBf16(tileB[2 * q * Tile + wc + g], tileB[(2 * q + 1) * Tile + wc + g]);
                uint b1 = PackBf16(tileB[(2 * q + 8) * Tile + wc + g], tileB[(2 * q + 9) * Tile + wc + g]);
                MmaBf16(ref d0, ref d1, ref d2, ref d3, a0, a1, a2, a3, b0, b1, lane);
                b0 = PackBf16(tileB[2 * q * Tile + wc + 8 + g], tileB[(2 * q + 1) * Tile + wc + 8 + g]);
                b1 = PackBf16(tileB[(2 * q + 8) * Tile + wc + 8 + g], tileB[(2 * q + 9) * Tile + wc + 8 + g]);
                MmaBf16(ref e0, ref e1, ref e2, ref e3, a0, a1, a2, a3, b0, b1, lane);
            }
            else
            {
                uint a0 = RoundTf32(tileA[(wr + g) * 8 + q]), a1 = RoundTf32(tileA[(wr + g + 8) * 8 + q]);
                uint a2 = RoundTf32(tileA[(wr + g) * 8 + q + 4]), a3 = RoundTf32(tileA[(wr + g + 8) * 8 + q + 4]);
                uint b0 = RoundTf32(tileB[q * Tile + wc + g]), b1 = RoundTf32(tileB[(q + 4) * Tile + wc + g]);
                MmaTf32(ref d0, ref d1, ref d2, ref d3, a0, a1, a2, a3, b0, b1, lane);
                b0 = RoundTf32(tileB[q * Tile + wc + 8 + g]);
                b1 = RoundTf32(tileB[(q + 4) * Tile + wc + 8 + g]);
                MmaTf32(ref e0, ref e1, ref e2, ref e3, a0, a1, a2, a3, b0, b1, lane);
            }
            Group.Barrier();
        }
        int i = row0 + wr + g, j = col0 + wc + 2 * q;
        Put(i, j, d0, d1, weights, c, c2, aux, s);
        Put(i + 8, j, d2, d3, weights, c, c2, aux, s);
        Put(i, j + 8, e0, e1, weights, c, c2, aux, s);
        Put(i + 8, j + 8, e2, e3, weights, c, c2, aux, s);
    }

    private static void Put(int i, int j, float v0, float v1, ArrayView<float> weights, ArrayView<float> c, ArrayView<float> c2,
        ArrayView<float> aux, GemmShape s)
    {
        if (i >= s.M) return;
        if (j < s.N) GemmKernel.Store(i, j, v0, weights, c, c2, aux, s);
        if (j + 1 < s.N) GemmKernel.Store(i, j + 1, v1, weights, c, c2, aux, s);
    }

    /// <summary>x rounded to TF32 (10 mantissa bits, to nearest, ties away from zero) as fp32 bits.</summary>
    public static uint RoundTf32(float x)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("cvt.rna.tf32.f32 %0, %1;", out uint r, x);
            return r;
        }
        uint bits = Interop.FloatAsInt(x);
        return (bits + 0x1000u) & 0xFFFFE000u;
    }

    /// <summary>Two values rounded to BF16 (to nearest even) and packed: <paramref name="lo"/> in the lower half.</summary>
    public static uint PackBf16(float lo, float hi)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("cvt.rn.bf16x2.f32 %0, %1, %2;", out uint r, hi, lo);
            return r;
        }
        return Bf16Bits(hi) << 16 | Bf16Bits(lo);
    }

    private static uint Bf16Bits(float x)
    {
        uint bits = Interop.FloatAsInt(x);
        return (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    }

    private static float Bf16Value(uint packed, int half) => Interop.IntAsFloat(half == 0 ? packed << 16 : packed & 0xFFFF0000u);

    private static void MmaTf32(ref float d0, ref float d1, ref float d2, ref float d3, uint a0, uint a1, uint a2, uint a3,
        uint b0, uint b1, int lane)
    {
        if (CudaAsm.IsSupported)
        {
            Ref<float> r0 = d0, r1 = d1, r2 = d2, r3 = d3;
            Input<uint> x0 = a0, x1 = a1, x2 = a2, x3 = a3, y0 = b0, y1 = b1;
            CudaAsm.EmitRef("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};",
                ref r0, ref r1, ref r2, ref r3, ref x0, ref x1, ref x2, ref x3, ref y0, ref y1);
            d0 = r0.Value; d1 = r1.Value; d2 = r2.Value; d3 = r3.Value;
            return;
        }
        // Emulation: lane (g, q) owns C[g][2q], C[g][2q+1], C[g+8][2q], C[g+8][2q+1]; A[row][k] lives in lane
        // (row mod 8)·4 + k mod 4, register (row ≥ 8) + 2·(k ≥ 4); B[k][n] in lane n·4 + k mod 4, register (k ≥ 4).
        int g = lane / 4, q = lane % 4;
        for (int k = 0; k < 8; k++)
        {
            float top = Interop.IntAsFloat(Warp.Shuffle(k < 4 ? a0 : a2, g * 4 + k % 4));
            float bottom = Interop.IntAsFloat(Warp.Shuffle(k < 4 ? a1 : a3, g * 4 + k % 4));
            float left = Interop.IntAsFloat(Warp.Shuffle(k < 4 ? b0 : b1, 2 * q * 4 + k % 4));
            float right = Interop.IntAsFloat(Warp.Shuffle(k < 4 ? b0 : b1, (2 * q + 1) * 4 + k % 4));
            d0 += top * left; d1 += top * right; d2 += bottom * left; d3 += bottom * right;
        }
    }

    private static void MmaBf16(ref float d0, ref float d1, ref float d2, ref float d3, uint a0, uint a1, uint a2, uint a3,
        uint b0, uint b1, int lane)
    {
        if (CudaAsm.IsSupported)
        {
            Ref<float> r0 = d0, r1 = d1, r2 = d2, r3 = d3;
            Input<uint> x0 = a0, x1 = a1, x2 = a2, x3 = a3, y0 = b0, y1 = b1;
            CudaAsm.EmitRef("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};",
                ref r0, ref r1, ref r2, ref r3, ref x0, ref x1, ref x2, ref x3, ref y0, ref y1);
            d0 = r0.Value; d1 = r1.Value; d2 = r2.Value; d3 = r3.Value;
            return;
        }
        // Emulation: the k-pair w = k/2 of A row lives in lane (row mod 8)·4 + w mod 4, register (row ≥ 8) + 2·(w ≥ 4);
        // of B column n in lane n·4 + w mod 4, register (w ≥ 4); k odd is the upper half.
        int g = lane / 4, q = lane % 4;
        for (int k = 0; k < 16; k++)
        {
            int w = k / 2, half = k % 2;
            float top = Bf16Value(Warp.Shuffle(w < 4 ? a0 : a2, g * 4 + w % 4), half);
            float bottom = Bf16Value(Warp.Shuffle(w < 4 ? a1 : a3, g * 4 + w % 4), half);
            float left = Bf16Value(Warp.Shuffle(w < 4 ? b0 : b1, 2 * q * 4 + w % 4), half);
            float right = Bf16Value(Warp.Shuffle(w < 4 ? b0 : b1, (2 * q + 1) * 4 + w % 4), half);
            d0 += top * left; d1 += top * right; d2 += bottom * left; d3 += bottom * right;
        }
    }
}
