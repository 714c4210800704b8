using AtpFast.Gpu;

namespace AtpFast.Tests.Gpu;

/// <summary>Backends under test besides the CPU: the GPU backend on ILGPU's CPU accelerator (always available) and on
/// a CUDA device (skipped, with the reason, where there is none).</summary>
internal static class GpuBackends
{
    public static IBackend CpuAccelerator(ModelWeights weights) => GpuBackend.CreateCpuAccelerator(weights);

    /// <summary>The CUDA backend, or a skip naming why there is none.</summary>
    public static IBackend Cuda(ModelWeights weights, Precision precision = Precision.Float32)
    {
        var backend = GpuBackend.TryCreateCuda(weights, precision, out string? reason);
        if (backend is null) Assert.Skip($"CUDA device tests need a GPU: {reason}");
        return backend;
    }
}
