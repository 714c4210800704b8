using AtpFast.Cpu;

namespace AtpFast.Native;

/// <summary>ATP_BACKEND_* → a backend. The NativeAOT library has the CPU backend only: ILGPU compiles its kernels
/// from IL at run time, and a NativeAOT image keeps no IL. The hosted build (a JIT runtime started through hostfxr)
/// references AtpFast.Gpu and lets it choose.</summary>
internal static class NativeBackends
{
    public const int Auto = 0, Cpu = 1, Cuda = 2;

    public static string Name(int backend) => backend switch { Auto => "auto", Cpu => "cpu", Cuda => "cuda", _ => "?" };

    /// <summary>Whether this build can honour <paramref name="backend"/> at all (checked when a context is created).</summary>
    public static void CheckAvailable(int backend)
    {
        if (backend is < Auto or > Cuda)
            throw new NativeException(Status.BadArgument, $"backend {backend} is not one of ATP_BACKEND_AUTO (0), ATP_BACKEND_CPU (1), ATP_BACKEND_CUDA (2)");
#if !ATPFAST_HOSTED
        if (backend == Cuda)
            throw new NativeException(Status.NotAvailable,
                "ATP_BACKEND_CUDA is not available in this build: the NativeAOT library runs the CPU backend only (the GPU backend " +
                "compiles its kernels with ILGPU at run time, which needs a JIT runtime). Use ATP_BACKEND_CPU or ATP_BACKEND_AUTO, or " +
                "load the hosted build of the same exports (docs/embedding.md, \"The GPU: the hosted route\").");
#endif
    }

    /// <summary>The backend of <paramref name="backend"/> over <paramref name="weights"/>.</summary>
    public static IBackend Create(ModelWeights weights, int backend, int threads)
    {
        CheckAvailable(backend);
#if ATPFAST_HOSTED
        try
        {
            return AtpFast.Gpu.Backends.Create(weights, Name(backend), threads);
        }
        catch (AtpFastException e) when (backend == Cuda)
        {
            throw new NativeException(Status.NotAvailable, $"ATP_BACKEND_CUDA: {e.Message}");
        }
#else
        return new CpuBackend(weights, Precision.Float32, threads);
#endif
    }
}
