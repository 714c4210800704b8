using AtpFast.Cpu;

namespace AtpFast.Gpu;

/// <summary>Backend choice for the tools and the API: <c>cpu</c>, <c>cuda</c> (a CUDA device; an error without one) or
/// <c>auto</c> (the CUDA device when one is present, else the CPU).</summary>
public static class Backends
{
    /// <summary>The names <see cref="Create"/> accepts.</summary>
    public static readonly string[] Names = ["cpu", "cuda", "auto"];

    /// <summary>Creates the backend <paramref name="kind"/> over <paramref name="weights"/>.</summary>
    /// <param name="weights">The model.</param>
    /// <param name="kind">cpu, cuda or auto.</param>
    /// <param name="threads">CPU worker threads (0 = all cores).</param>
    /// <exception cref="AtpFastException">An unknown kind, or <c>cuda</c> without a usable CUDA device.</exception>
    public static IBackend Create(ModelWeights weights, string kind = "auto", int threads = 0)
    {
        ArgumentNullException.ThrowIfNull(weights);
        switch (kind.Trim().ToLowerInvariant())
        {
            case "cpu":
                return new CpuBackend(weights, Precision.Float32, threads);
            case "cuda":
                throw new AtpFastException("the CUDA backend is not available in this build yet (the ILGPU backend is in progress); use --backend cpu");
            case "auto":
                return new CpuBackend(weights, Precision.Float32, threads);
            default:
                throw new AtpFastException($"unknown backend '{kind}' (expected cpu, cuda or auto)");
        }
    }
}
