using System.Globalization;
using System.Runtime.InteropServices;

namespace AtpFast.Cli;

/// <summary>
/// This machine's CPU and its fp32 FMA peak where it is known: <c>ATPFAST_CPU_PEAK_GFLOPS</c>, else the table of measured
/// machines. Shared by <c>atpfast bench</c> and perf/AtpFast.Benchmarks (which compiles this file too); each decides
/// for itself what an unknown CPU means (bench estimates it, the benchmarks refuse to run).
/// </summary>
internal static class CpuPeak
{
    /// <summary>The environment variable that gives the peak in GFLOP/s (fp32) and overrides the table.</summary>
    public const string Variable = "ATPFAST_CPU_PEAK_GFLOPS";

    /// <summary>/proc/cpuinfo's model name ("unknown CPU" where it has none), or the process architecture without the file.</summary>
    public static string CpuName()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
        }
        catch (IOException)
        {
        }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    /// <summary>The peak from <see cref="Variable"/> or from the known-machine table, with where it came from; null for a
    /// CPU the table does not know.</summary>
    public static (double Gflops, string Source)? Known()
    {
        if (Environment.GetEnvironmentVariable(Variable) is { } env
            && double.TryParse(env, NumberStyles.Float, CultureInfo.InvariantCulture, out double fromEnv))
            return (fromEnv, Variable);
        // cores × 2 FMA units × 8 fp32 lanes × 2 FLOPs × clock. The CI machine (the workplace's 2-core "AMD EPYC" VM)
        // reports 2.1 GHz, but both OpenBLAS and our GEMM measure ~205 GFLOP/s there, which needs a ≥ 3.2 GHz boost
        // clock: the table assumes 3.5 GHz (224 GFLOP/s), an estimate the guest cannot confirm.
        return (CpuName(), Environment.ProcessorCount) switch
        {
            ("AMD EPYC", 2) => (2 * 2 * 8 * 2 * 3.5, "known machine: 2-core AMD EPYC VM at 3.5 GHz boost"),
            _ => null,
        };
    }
}
