using AtpFast.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace AtpFast.Gpu;

/// <summary>The matrix-product kernels; a backend loads exactly one, chosen from its precision and device.</summary>
internal enum GemmVariant
{
    /// <summary><see cref="GemmKernel"/>: one thread per output, fp32 (the CPU accelerator's fp32 path).</summary>
    Strict,
    /// <summary><see cref="GemmTiledKernel"/>: 64×64 shared-memory tiles, fp32 (CUDA's fp32 path).</summary>
    Tiled,
    /// <summary><see cref="GemmTensorCoreKernel.Tf32"/>: tensor cores, TF32 inputs.</summary>
    Tf32,
    /// <summary><see cref="GemmTensorCoreKernel.Bf16"/>: tensor cores, BF16 inputs.</summary>
    Bf16,
}

/// <summary>Every kernel of the library loaded once for one accelerator (ILGPU compiles each on first load), with the
/// one GEMM the backend's precision uses.</summary>
internal sealed class KernelSet
{
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>? _gemmStrict;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>? _gemmGrouped;

    /// <exception cref="AtpFastException"><paramref name="precision"/> needs a GEMM <paramref name="a"/> cannot run.</exception>
    public KernelSet(Accelerator a, Precision precision)
    {
        Gemm = ChooseGemm(a, precision);
        _gemmStrict = Gemm == GemmVariant.Strict
            ? a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(GemmKernel.Run)
            : null;
        _gemmGrouped = Gemm switch
        {
            GemmVariant.Tiled => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(GemmTiledKernel.Run),
            GemmVariant.Tf32 => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(GemmTensorCoreKernel.Tf32),
            GemmVariant.Bf16 => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(GemmTensorCoreKernel.Bf16),
            _ => null,
        };
        Embedding = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int, int>(EmbeddingKernel.Run);
        Norm = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, NormShape>(NormKernel.Run);
        NormBackward = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            int, int, float, Flag, Flag, RowMap>(NormBackwardKernel.Run);
        Rotary = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, Flag, int, int, Flag>(RotaryKernel.Run);
        Attention = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<int>, ArrayView<float>, ArrayView<float>, AttentionShape>(AttentionKernel.Run);
        AttentionRows = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionBackwardShape>(AttentionBackwardKernel.Rows);
        AttentionKeys = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, AttentionBackwardShape>(AttentionBackwardKernel.Keys);
        ActivationBackward = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ActivationKind>(ActivationBackwardKernel.Run);
        Add = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(AddKernel.Run);
        FiniteCheck = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, int>(FiniteCheckKernel.Run);
        RowCopy = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, RowMap, RowMap>(RowCopyKernel.Run);
        SegmentCopy = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, int>(SegmentCopyKernel.Run);
        Unembed = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int, int>(UnembedKernel.Run);
        MetricValue = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>,
            ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, MetricShape>(MetricKernel.Value);
        MetricGradient = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>,
            ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<float>, MetricShape>(MetricKernel.Gradient);
        Products = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<double>, int, int, int, int>(
            AttributionProductsKernel.Run);
        ScoreAccumulate = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>,
            int, int, int, int, double, Flag, Flag>(ScoreAccumulateKernel.Run);
        QkBuild = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<int>, ArrayView<double>, QkShape>(QkFixKernel.Build);
        QkApplyRows = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<double>, ArrayView<double>, ArrayView<int>, ArrayView<double>,
            ArrayView<double>, ArrayView<double>, ArrayView<double>, QkShape>(QkFixKernel.ApplyRows);
        QkApplyKeys = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<double>, ArrayView<int>, ArrayView<double>, ArrayView<double>,
            ArrayView<double>, ArrayView<double>, QkShape>(QkFixKernel.ApplyKeys);
    }

    public Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int, int> Embedding { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, NormShape> Norm { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float, Flag, Flag, RowMap> NormBackward { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, Flag, int, int, Flag> Rotary { get; }

    /// <summary>The GEMM this set loaded.</summary>
    public GemmVariant Gemm { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>,
        ArrayView<float>, AttentionShape> Attention { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, AttentionBackwardShape> AttentionRows { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        AttentionBackwardShape> AttentionKeys { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ActivationKind> ActivationBackward { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>> Add { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<int>, int> FiniteCheck { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, RowMap, RowMap> RowCopy { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, int> SegmentCopy { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int, int> Unembed { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<double>, ArrayView<double>,
        ArrayView<double>, ArrayView<double>, MetricShape> MetricValue { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<double>, ArrayView<double>,
        ArrayView<double>, ArrayView<float>, MetricShape> MetricGradient { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<double>, int, int, int, int> Products { get; }
    public Action<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, int, int, int, int, double, Flag, Flag> ScoreAccumulate { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<int>, ArrayView<double>, QkShape> QkBuild { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<double>, ArrayView<double>, ArrayView<int>, ArrayView<double>, ArrayView<double>,
        ArrayView<double>, ArrayView<double>, QkShape> QkApplyRows { get; }
    public Action<Index1D, ArrayView<float>, ArrayView<double>, ArrayView<int>, ArrayView<double>, ArrayView<double>, ArrayView<double>,
        ArrayView<double>, QkShape> QkApplyKeys { get; }

    /// <summary>The GEMM for <paramref name="precision"/> on <paramref name="a"/>: fp32 tiled on CUDA and strict
    /// elsewhere; TF32/BF16 on tensor cores, which need a CUDA device or a CPU accelerator shaped like one (warps of 32,
    /// groups of <see cref="GemmTensorCoreKernel.Threads"/>: the kernels' warp-shuffle fallback). The one place that
    /// decides whether a precision can run on a device.</summary>
    /// <exception cref="AtpFastException">The precision's GEMM cannot run on <paramref name="a"/>, or fp64.</exception>
    public static GemmVariant ChooseGemm(Accelerator a, Precision precision)
    {
        bool cuda = a.AcceleratorType == AcceleratorType.Cuda;
        switch (precision)
        {
            case Precision.Float32:
                return cuda ? GemmVariant.Tiled : GemmVariant.Strict;
            case Precision.Tf32 or Precision.Bf16:
                if (!cuda && (a.WarpSize != 32 || a.MaxNumThreadsPerGroup < GemmTensorCoreKernel.Threads))
                    throw new AtpFastException($"{precision} needs tensor cores (a CUDA device) or a CPU accelerator with warps of 32 threads " +
                        $"and groups of {GemmTensorCoreKernel.Threads}; {a.Name} has warps of {a.WarpSize} and groups of at most {a.MaxNumThreadsPerGroup}");
                return precision == Precision.Tf32 ? GemmVariant.Tf32 : GemmVariant.Bf16;
            default:
                throw new AtpFastException($"the GPU backend runs fp32, TF32 or BF16, not {precision}");
        }
    }

    /// <summary>c = a·W (+ epilogue) on the loaded GEMM, B at <see cref="GemmShape.BOffset"/> in <paramref name="w"/>.</summary>
    public void RunGemm(ArrayView<float> a, ArrayView<float> w, ArrayView<float> c, ArrayView<float> c2, ArrayView<float> aux, GemmShape s)
    {
        if (s.M == 0 || s.N == 0) return;
        switch (Gemm)
        {
            case GemmVariant.Strict:
                _gemmStrict!(s.M * s.N, a, w, c, c2, aux, s);
                break;
            case GemmVariant.Tiled:
                _gemmGrouped!(new KernelConfig(new Index2D(Tiles(s.N, GemmTiledKernel.Tile), Tiles(s.M, GemmTiledKernel.Tile)),
                    new Index2D(GemmTiledKernel.Threads, GemmTiledKernel.Threads)), a, w, c, c2, aux, s);
                break;
            default:
                _gemmGrouped!(new KernelConfig(new Index2D(Tiles(s.N, GemmTensorCoreKernel.Tile), Tiles(s.M, GemmTensorCoreKernel.Tile)),
                    new Index2D(GemmTensorCoreKernel.Threads, 1)), a, w, c, c2, aux, s);
                break;
        }
    }

    private static int Tiles(int n, int tile) => (n + tile - 1) / tile;
}
