using AtpFast.Cpu;

namespace AtpFast.Gpu;

/// <summary>Backend choice for the tools and the API: <c>cpu</c>, <c>cuda</c> (the first CUDA device; an error without
/// one) or <c>auto</c> (the CUDA device when one is usable, else the CPU).</summary>
public static class Backends
{
    /// <summary>The names <see cref="Create"/> accepts.</summary>
    public static readonly string[] Names = ["cpu", "cuda", "auto"];

    /// <summary>Creates the backend <paramref name="kind"/> over <paramref name="weights"/>.</summary>
    /// <param name="weights">The model.</param>
    /// <param name="kind">cpu, cuda or auto.</param>
    /// <param name="threads">CPU worker threads (0 = all cores).</param>
    /// <param name="precision">fp32 (default); fp64 on the CPU; TF32 or BF16 on a CUDA device.</param>
    /// <exception cref="AtpFastException">An unknown kind, or <c>cuda</c> without a usable CUDA device (the message says why).</exception>
    public static IBackend Create(ModelWeights weights, string kind = "auto", int threads = 0, Precision precision = Precision.Float32)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(kind);
        switch (kind.Trim().ToLowerInvariant())
        {
            case "cpu":
                return new CpuBackend(weights, precision, threads);
            case "cuda":
                return GpuBackend.CreateCuda(weights, precision);
            case "auto":
                return GpuBackend.TryCreateCuda(weights, precision, out _) ?? (IBackend)new CpuBackend(weights,
                    precision is Precision.Tf32 or Precision.Bf16 ? Precision.Float32 : precision, threads);
            default:
                throw new AtpFastException($"unknown backend '{kind}' (expected cpu, cuda or auto)");
        }
    }
}
