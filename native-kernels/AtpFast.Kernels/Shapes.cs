namespace AtpFast.Kernels;

/// <summary>How a kernel maps compact rows onto the rows of a strided buffer: compact row j is row
/// <c>(j / PerRun)·RowsPerRun + First + j % PerRun</c> — a run's block of positions inside a buffer that holds
/// <see cref="RowsPerRun"/> positions per run. <see cref="Identity"/> maps j to j.</summary>
/// <param name="PerRun">Compact rows per run.</param>
/// <param name="RowsPerRun">Rows per run in the strided buffer.</param>
/// <param name="First">First row of each run's block.</param>
public readonly record struct RowMap(int PerRun, int RowsPerRun, int First)
{
    /// <summary>j → j.</summary>
    public static RowMap Identity(int rows) => new(Math.Max(1, rows), Math.Max(1, rows), 0);

    /// <summary>The strided row of compact row <paramref name="j"/>.</summary>
    public int Row(int j) => j / PerRun * RowsPerRun + First + j % PerRun;
}

/// <summary>A blittable boolean for kernel parameters (ILGPU passes only blittable types; <c>bool</c> is not).</summary>
/// <param name="Value">1 for true, 0 for false.</param>
public readonly record struct Flag(int Value)
{
    public static implicit operator bool(Flag flag) => flag.Value != 0;

    public static implicit operator Flag(bool value) => new(value ? 1 : 0);

    /// <summary>The flag as a bool.</summary>
    public bool ToBoolean() => Value != 0;

    /// <summary>A flag from a bool.</summary>
    public static Flag FromBoolean(bool value) => value;
}

/// <summary>The nonlinearities of the MLP, as kernels take them.</summary>
public enum ActivationKind
{
    /// <summary>x·Φ(x).</summary>
    GeluErf,
    /// <summary>x·σ(2·√(2/π)·(x + 0.044715x³)) = 0.5·x·(1 + tanh(…)).</summary>
    GeluTanh,
    /// <summary>max(x, 0).</summary>
    Relu,
    /// <summary>silu(gate)·up.</summary>
    SwiGlu,
}

/// <summary>Scalar math shared by the kernels (inlined by ILGPU into each kernel).</summary>
public static class DeviceMath
{
    private const float SqrtHalf = 0.70710678118654752f;
    private const float TwoSqrtTwoOverPi = 1.5957691216057308f;
    private const float TanhCubic = 0.044715f;

    /// <summary>σ(x) = 1/(1 + e^−x).</summary>
    public static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    /// <summary>Φ(x) with Numerical Recipes' erfc approximation (|error| &lt; 1.2e-7), the CPU backend's fp32 formula.</summary>
    public static float Phi(float x)
    {
        float z = MathF.Abs(x) * SqrtHalf;
        float t = 1f / (1f + 0.5f * z);
        float p = 0.17087277f;
        p = p * t - 0.82215223f;
        p = p * t + 1.48851587f;
        p = p * t - 1.13520398f;
        p = p * t + 0.27886807f;
        p = p * t - 0.18628806f;
        p = p * t + 0.09678418f;
        p = p * t + 0.37409196f;
        p = p * t + 1.00002368f;
        p = p * t - 1.26551223f;
        float half = 0.5f * t * MathF.Exp(p - z * z);
        return x >= 0 ? 1f - half : half;
    }

    /// <summary>The MLP nonlinearity of <paramref name="up"/> (and <paramref name="gate"/> for SwiGLU).</summary>
    public static float Activate(ActivationKind kind, float up, float gate) => kind switch
    {
        ActivationKind.GeluErf => up * Phi(up),
        ActivationKind.GeluTanh => up * Sigmoid(TwoSqrtTwoOverPi * up * (1f + TanhCubic * up * up)),
        ActivationKind.Relu => up > 0 ? up : 0f,
        _ => gate * Sigmoid(gate) * up,
    };

    /// <summary>exp(x) − 1 accurate near 0 (Kahan's correction). The same formula as the CPU backend's
    /// <c>AtpFast.Cpu.Accurate</c>, written again because the kernels depend on ILGPU only (and core not on them).</summary>
    public static double ExpM1(double x)
    {
        double u = Math.Exp(x);
        if (u == 1.0) return x;
        double um1 = u - 1.0;
        if (um1 == -1.0) return -1.0;
        if (double.IsPositiveInfinity(u)) return u;
        return um1 * x / Math.Log(u);
    }

    /// <summary>log(1 + x) accurate near 0 (Kahan's correction).</summary>
    public static double Log1P(double x)
    {
        double u = 1.0 + x;
        if (u == 1.0) return x;
        if (double.IsPositiveInfinity(u)) return u;
        return Math.Log(u) * x / (u - 1.0);
    }
}
