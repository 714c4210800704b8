using AtpFast.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace AtpFast.Gpu;

/// <summary>Every kernel of the library loaded once for one accelerator (ILGPU compiles each on first load).</summary>
internal sealed class KernelSet
{
    public KernelSet(Accelerator a)
    {
        Embedding = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int, int>(EmbeddingKernel.Run);
        Norm = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, NormShape>(NormKernel.Run);
        NormBackward = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            int, int, float, Flag, Flag, RowMap>(NormBackwardKernel.Run);
        Rotary = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, Flag, int, int, Flag>(RotaryKernel.Run);
        Gemm = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(GemmKernel.Run);
        // The tiled and tensor-core GEMMs need explicit groups (256 and 128 threads; warps of 32 for the fragments):
        // every CUDA device, and only CPU accelerators configured that wide (tests).
        if (a.AcceleratorType == AcceleratorType.Cuda)
            GemmTiled = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(GemmTiledKernel.Run);
        if (a.AcceleratorType == AcceleratorType.Cuda || (a.WarpSize == 32 && a.MaxNumThreadsPerGroup >= GemmTensorCoreKernel.Threads))
        {
            GemmTf32 = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(GemmTensorCoreKernel.Tf32);
            GemmBf16 = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(GemmTensorCoreKernel.Bf16);
        }
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
    public Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape> Gemm { get; }
    public Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>? GemmTiled { get; }
    public Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>? GemmTf32 { get; }
    public Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>? GemmBf16 { get; }
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
}
