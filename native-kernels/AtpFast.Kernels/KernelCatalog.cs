using System.Reflection;

namespace AtpFast.Kernels;

/// <summary>One kernel entry point: a name for tables, the method, and whether it needs explicit groups (shared
/// memory, barriers, warp shuffles) or is implicitly grouped (one thread per output).</summary>
/// <param name="Name">Name used in reports, e.g. "GemmTensorCore.Tf32".</param>
/// <param name="Method">The static kernel method.</param>
/// <param name="ExplicitlyGrouped">Launched with an explicit group size.</param>
public sealed record KernelEntry(string Name, MethodInfo Method, bool ExplicitlyGrouped);

/// <summary>Every kernel of the library, for the PTX compilation test and the ptxas resource table.</summary>
public static class KernelCatalog
{
    /// <summary>All entry points.</summary>
    public static IReadOnlyList<KernelEntry> All { get; } =
    [
        Implicit(typeof(EmbeddingKernel), nameof(EmbeddingKernel.Run)),
        Implicit(typeof(NormKernel), nameof(NormKernel.Run)),
        Implicit(typeof(NormBackwardKernel), nameof(NormBackwardKernel.Run)),
        Implicit(typeof(RotaryKernel), nameof(RotaryKernel.Run)),
        Implicit(typeof(GemmKernel), nameof(GemmKernel.Run)),
        Explicit(typeof(GemmTiledKernel), nameof(GemmTiledKernel.Run)),
        Explicit(typeof(GemmTensorCoreKernel), nameof(GemmTensorCoreKernel.Tf32)),
        Explicit(typeof(GemmTensorCoreKernel), nameof(GemmTensorCoreKernel.Bf16)),
        Implicit(typeof(AttentionKernel), nameof(AttentionKernel.Run)),
        Implicit(typeof(AttentionBackwardKernel), nameof(AttentionBackwardKernel.Rows)),
        Implicit(typeof(AttentionBackwardKernel), nameof(AttentionBackwardKernel.Keys)),
        Implicit(typeof(ActivationBackwardKernel), nameof(ActivationBackwardKernel.Run)),
        Implicit(typeof(AddKernel), nameof(AddKernel.Run)),
        Implicit(typeof(FiniteCheckKernel), nameof(FiniteCheckKernel.Run)),
        Implicit(typeof(RowCopyKernel), nameof(RowCopyKernel.Run)),
        Implicit(typeof(SegmentCopyKernel), nameof(SegmentCopyKernel.Run)),
        Implicit(typeof(UnembedKernel), nameof(UnembedKernel.Run)),
        Implicit(typeof(MetricKernel), nameof(MetricKernel.Value)),
        Implicit(typeof(MetricKernel), nameof(MetricKernel.Gradient)),
        Implicit(typeof(AttributionProductsKernel), nameof(AttributionProductsKernel.Run)),
        Implicit(typeof(ScoreAccumulateKernel), nameof(ScoreAccumulateKernel.Run)),
        Implicit(typeof(QkFixKernel), nameof(QkFixKernel.Build)),
        Implicit(typeof(QkFixKernel), nameof(QkFixKernel.ApplyRows)),
        Implicit(typeof(QkFixKernel), nameof(QkFixKernel.ApplyKeys)),
    ];

    private static KernelEntry Implicit(Type type, string method) => Entry(type, method, false);

    private static KernelEntry Explicit(Type type, string method) => Entry(type, method, true);

    private static KernelEntry Entry(Type type, string method, bool explicitly)
    {
        string name = type.Name.EndsWith("Kernel", StringComparison.Ordinal) ? type.Name[..^"Kernel".Length] : type.Name;
        return new KernelEntry(method == "Run" ? name : $"{name}.{method}",
            type.GetMethod(method, BindingFlags.Public | BindingFlags.Static) ?? throw new MissingMethodException(type.Name, method), explicitly);
    }
}
