using AtpFast.Kernels;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace AtpFast.Tests.Gpu;

/// <summary>
/// The CUDA GEMMs run on ILGPU's CPU accelerator configured like a GPU (warps of 32, groups of 256): the tiled fp32
/// kernel equals the strict per-element kernel bit for bit (both sum k in order); the tensor-core kernels' fallback
/// multiplies the same register fragments through warp shuffles, so with TF32/BF16-rounded inputs they equal a
/// sequential host computation bit for bit — which checks the tiling, the fragment ownership and the rounding. Ragged
/// shapes, Wᵀ, accumulation, bias and every epilogue are covered.
/// </summary>
public sealed class GemmKernelTests : IDisposable
{
    private readonly Context _context = Context.Create(b => b.CPU().EnableAlgorithms());
    private readonly Accelerator _wide;

    public GemmKernelTests() => _wide = new CPUDevice(32, 8, 1).CreateCPUAccelerator(_context);

    public void Dispose()
    {
        _wide.Dispose();
        _context.Dispose();
    }

    public static TheoryData<int, int, int, bool, bool, int> Shapes() => new()
    {
        { 1, 1, 1, false, false, 0 },
        { 33, 17, 65, false, false, 0 },
        { 70, 20, 9, true, false, 1 },
        { 40, 24, 40, false, true, 2 },
        { 5, 50, 31, true, true, 0 },
    };

    private static GemmShape Shape(int m, int k, int n, bool transpose, bool accumulate, int epilogue) =>
        new(m, k, n, 7, transpose, accumulate, accumulate ? -1 : 7 + k * n + 3, (GemmEpilogue)epilogue, ActivationKind.GeluTanh);

    private (float[] A, float[] Slab, float[] C, float[] Aux) Inputs(int m, int k, int n, int seed)
    {
        var rng = new Random(seed);
        float[] Random(int count) => [.. Enumerable.Range(0, count).Select(_ => (float)(2 * rng.NextDouble() - 1))];
        return (Random(m * k), Random(7 + k * n + 3 + n + 5), Random(m * n), Random(m * n));
    }

    private (float[] C, float[] C2) Launch(Action<Accelerator, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> kernel,
        float[] a, float[] slab, float[] c, float[] aux)
    {
        using var da = _wide.Allocate1D(a);
        using var ds = _wide.Allocate1D(slab);
        using var dc = _wide.Allocate1D(c);
        using var dc2 = _wide.Allocate1D<float>(c.Length);
        using var daux = _wide.Allocate1D(aux);
        kernel(_wide, da.View, ds.View, dc.View, dc2.View, daux.View);
        _wide.Synchronize();
        return (dc.GetAsArray1D(), dc2.GetAsArray1D());
    }

    private (float[] C, float[] C2) Strict(GemmShape s, float[] a, float[] slab, float[] c, float[] aux) =>
        Launch((acc, x, w, y, y2, z) => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, GemmShape>(GemmKernel.Run)(s.M * s.N, x, w, y, y2, z, s), a, slab, c, aux);

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Tiled_fp32_gemm_equals_the_strict_kernel_bit_for_bit(int m, int k, int n, bool transpose, bool accumulate, int epilogue)
    {
        var s = Shape(m, k, n, transpose, accumulate, epilogue);
        var (a, slab, c, aux) = Inputs(m, k, n, m + k + n);
        var expected = Strict(s, a, slab, c, aux);
        var config = new KernelConfig(new Index2D((n + 63) / 64, (m + 63) / 64), new Index2D(16, 16));
        var actual = Launch((acc, x, w, y, y2, z) => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, GemmShape>(GemmTiledKernel.Run)(config, x, w, y, y2, z, s), a, slab, c, aux);
        Assert.Equal(expected.C, actual.C);
        if (s.Epilogue != GemmEpilogue.Plain) Assert.Equal(expected.C2, actual.C2);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Tensor_core_gemms_multiply_their_fragments_as_the_rounded_inputs_say(int m, int k, int n, bool transpose, bool accumulate, int epilogue)
    {
        var s = Shape(m, k, n, transpose, accumulate, epilogue);
        var (a, slab, c, aux) = Inputs(m, k, n, 3 * m + k + n);
        var config = new KernelConfig(new Index2D((n + 31) / 32, (m + 31) / 32), new Index2D(GemmTensorCoreKernel.Threads, 1));
        foreach (bool bf16 in new[] { false, true })
        {
            var actual = Launch((acc, x, w, y, y2, z) => acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, GemmShape>(bf16 ? GemmTensorCoreKernel.Bf16 : GemmTensorCoreKernel.Tf32)(config, x, w, y, y2, z, s),
                a, slab, c, aux);
            // Host: k in order over k-slices of 8 (TF32) or 16 (BF16), each product of rounded inputs added to the accumulator.
            Func<float, float> round = bf16 ? RoundBf16 : RoundTf32;
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    float sum = 0;
                    for (int kk = 0; kk < k; kk++) sum += round(a[i * k + kk]) * round(slab[s.BIndex(kk, j)]);
                    float v = s.Accumulate ? c[i * n + j] + sum : sum + slab[s.BiasOffset + j];
                    Assert.True(v == actual.C[i * n + j], $"{(bf16 ? "BF16" : "TF32")} C[{i},{j}] = {actual.C[i * n + j]:R}, expected {v:R}");
                }
            }
        }
    }

    /// <summary>TF32: the nearest value with 10 mantissa bits, ties away from zero (cvt.rna).</summary>
    private static float RoundTf32(float x) => BitConverter.UInt32BitsToSingle((BitConverter.SingleToUInt32Bits(x) + 0x1000u) & 0xFFFFE000u);

    /// <summary>BF16: the nearest value with 7 mantissa bits, ties to even (cvt.rn).</summary>
    private static float RoundBf16(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        return BitConverter.UInt32BitsToSingle(((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16) << 16);
    }

    [Fact]
    public void Input_rounding_is_to_the_nearest_representable_value()
    {
        var rng = new Random(3);
        for (int i = 0; i < 20000; i++)
        {
            float x = (float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-20, 20)));
            foreach (var (round, bits) in new[] { ((Func<float, float>)RoundTf32, 10), (RoundBf16, 7) })
            {
                // Brute force: the two neighbours with `bits` mantissa bits around x.
                double ulp = Math.Pow(2, Math.ILogB(x) - bits);
                double lower = Math.Floor(x / ulp) * ulp, upper = lower + ulp, r = round(x);
                Assert.True(r == lower || r == upper, $"{x:R} rounded to {r:R}, not a neighbour {lower:R}/{upper:R}");
                double dr = Math.Abs(r - x), other = Math.Abs((r == lower ? upper : lower) - x);
                Assert.True(dr <= other, $"{x:R} rounded to {r:R}, farther than {(r == lower ? upper : lower):R}");
            }
        }
        Assert.Equal(1f + 1f / 1024, RoundTf32(1f + 1.5f / 2048)); // ties away
        Assert.Equal(1f, RoundBf16(1f + 1f / 256));                  // tie to even (down)
        Assert.Equal(1f + 2f / 128, RoundBf16(1f + 3f / 256));       // tie to even (up)
    }

    /// <summary>The kernels' own rounding (the fallback path CPU accelerators run) equals the host rounding above.</summary>
    [Fact]
    public void Kernel_rounding_fallbacks_equal_the_reference_rounding()
    {
        var rng = new Random(5);
        for (int i = 0; i < 5000; i++)
        {
            float x = (float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-20, 20))), y = (float)(rng.NextDouble() - 0.5);
            Assert.Equal(RoundTf32(x), BitConverter.UInt32BitsToSingle(GemmTensorCoreKernel.RoundTf32(x)));
            uint packed = GemmTensorCoreKernel.PackBf16(x, y);
            Assert.Equal(RoundBf16(x), BitConverter.UInt32BitsToSingle(packed << 16));
            Assert.Equal(RoundBf16(y), BitConverter.UInt32BitsToSingle(packed & 0xFFFF0000u));
        }
    }
}
