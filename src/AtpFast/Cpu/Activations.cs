using System.Numerics;
using System.Numerics.Tensors;

namespace AtpFast.Cpu;

/// <summary>MLP nonlinearities and their derivatives, element-wise over a block of rows, written as the reference
/// definitions (PyTorch's formulas). fp32 and fp64 share the code; erf is the one function computed differently
/// (a 1.2e-7 approximation in fp32, a series accurate to ~1e-16 in fp64, where gradient checks need it).</summary>
internal static class Activations
{
    private const double SqrtHalf = 0.70710678118654752;
    private const double SqrtTwoOverPi = 0.79788456080286536;
    private const double InvSqrtTwoPi = 0.39894228040143268;
    private const double TanhCubic = 0.044715;

    /// <summary>post = act(up), or silu(gate)·up for SwiGLU. Pre-activations are left intact.</summary>
    /// <param name="activation">The nonlinearity.</param>
    /// <param name="up">Pre-activation of the input ("up") projection.</param>
    /// <param name="gate">Pre-activation of the gate projection (SwiGLU only; empty otherwise).</param>
    /// <param name="post">Output, same length as <paramref name="up"/>.</param>
    /// <param name="scratch">Work space, same length.</param>
    public static void Forward<T>(MlpActivation activation, ReadOnlySpan<T> up, ReadOnlySpan<T> gate, Span<T> post, Span<T> scratch)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (activation)
        {
            case MlpActivation.SwiGlu:
                // silu(g) = g·sigmoid(g); post = silu(gate)·up.
                TensorPrimitives.Sigmoid(gate, scratch);
                TensorPrimitives.Multiply(gate, scratch, post);
                TensorPrimitives.Multiply(post, up, post);
                break;
            case MlpActivation.GeluErf:
                for (int i = 0; i < up.Length; i++)
                {
                    double x = double.CreateTruncating(up[i]);
                    post[i] = T.CreateTruncating(0.5 * x * (1.0 + Erf<T>(x * SqrtHalf)));
                }
                break;
            case MlpActivation.GeluTanh:
                // scratch = tanh(√(2/π)·x·(1 + 0.044715·x²)); post = 0.5·x·(1 + scratch). Vectorised: a scalar tanh per
                // element cost more than all the GEMMs of the IOI model's forward.
                TanhArgument(up, scratch);
                TensorPrimitives.Tanh(scratch, scratch);
                TensorPrimitives.Add(scratch, T.One, post);
                TensorPrimitives.Multiply(post, up, post);
                TensorPrimitives.Multiply(post, T.CreateTruncating(0.5), post);
                break;
            case MlpActivation.Relu:
                TensorPrimitives.Max(up, T.Zero, post);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(activation));
        }
    }

    /// <summary>Back-propagates ∂L/∂post to the pre-activations.</summary>
    /// <param name="activation">The nonlinearity.</param>
    /// <param name="up">Pre-activation of the input projection.</param>
    /// <param name="gate">Pre-activation of the gate (SwiGLU only).</param>
    /// <param name="dPost">∂L/∂post.</param>
    /// <param name="dUp">Output ∂L/∂up.</param>
    /// <param name="dGate">Output ∂L/∂gate (SwiGLU only; empty otherwise).</param>
    /// <param name="scratch">Work space, same length as <paramref name="up"/>.</param>
    public static void Backward<T>(MlpActivation activation, ReadOnlySpan<T> up, ReadOnlySpan<T> gate, ReadOnlySpan<T> dPost,
        Span<T> dUp, Span<T> dGate, Span<T> scratch)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (activation)
        {
            case MlpActivation.SwiGlu:
                // post = g·σ(g)·u: ∂/∂u = silu(g); ∂/∂g = u·σ(g)·(1 + g·(1 − σ(g))).
                for (int i = 0; i < up.Length; i++)
                {
                    T g = gate[i], s = T.One / (T.One + T.Exp(-g));
                    dUp[i] = dPost[i] * g * s;
                    dGate[i] = dPost[i] * up[i] * s * (T.One + g * (T.One - s));
                }
                break;
            case MlpActivation.GeluErf:
                // d/dx x·Φ(x) = Φ(x) + x·φ(x).
                for (int i = 0; i < up.Length; i++)
                {
                    double x = double.CreateTruncating(up[i]);
                    double derivative = 0.5 * (1.0 + Erf<T>(x * SqrtHalf)) + x * InvSqrtTwoPi * Math.Exp(-0.5 * x * x);
                    dUp[i] = dPost[i] * T.CreateTruncating(derivative);
                }
                break;
            case MlpActivation.GeluTanh:
                // d/dx 0.5·x·(1 + tanh u) = 0.5·(1 + tanh u) + 0.5·x·(1 − tanh² u)·u', u' = √(2/π)·(1 + 3·0.044715·x²).
                TanhArgument(up, scratch);
                TensorPrimitives.Tanh(scratch, scratch);
                T half = T.CreateTruncating(0.5), c = T.CreateTruncating(SqrtTwoOverPi), c3 = T.CreateTruncating(3 * TanhCubic);
                for (int i = 0; i < up.Length; i++)
                {
                    T x = up[i], th = scratch[i];
                    T derivative = half * (T.One + th) + half * x * (T.One - th * th) * c * (T.One + c3 * x * x);
                    dUp[i] = dPost[i] * derivative;
                }
                break;
            case MlpActivation.Relu:
                for (int i = 0; i < up.Length; i++) dUp[i] = up[i] > T.Zero ? dPost[i] : T.Zero;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(activation));
        }
    }

    /// <summary>scratch = √(2/π)·x·(1 + 0.044715·x²), the tanh argument of GELU's tanh form.</summary>
    private static void TanhArgument<T>(ReadOnlySpan<T> x, Span<T> scratch) where T : unmanaged, IFloatingPointIeee754<T>
    {
        TensorPrimitives.Multiply(x, x, scratch);
        TensorPrimitives.Multiply(scratch, T.CreateTruncating(TanhCubic), scratch);
        TensorPrimitives.Add(scratch, T.One, scratch);
        TensorPrimitives.Multiply(scratch, x, scratch);
        TensorPrimitives.Multiply(scratch, T.CreateTruncating(SqrtTwoOverPi), scratch);
    }

    /// <summary>erf(x): the fp32 approximation for <c>float</c> passes, the precise series for <c>double</c>.</summary>
    public static double Erf<T>(double x) => typeof(T) == typeof(double) ? ErfPrecise(x) : ErfApprox(x);

    /// <summary>erf with |error| &lt; 1.2e-7 (Numerical Recipes' erfc rational approximation), enough for fp32.</summary>
    public static double ErfApprox(double x)
    {
        double z = Math.Abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double erfc = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
                      t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
                      t * (-0.82215223 + t * 0.17087277)))))))));
        double erf = 1.0 - erfc;
        return x >= 0 ? erf : -erf;
    }

    /// <summary>erf to ~1e-16 relative: erf(x) = (2/√π)·e^(−x²)·Σ_n 2ⁿx^(2n+1)/(1·3···(2n+1)), a series of positive
    /// terms (no cancellation); beyond |x| = 6, erf = ±1 in double precision.</summary>
    public static double ErfPrecise(double x)
    {
        double z = Math.Abs(x);
        if (z >= 6.0) return Math.Sign(x);
        double term = z, sum = z, x2 = z * z;
        for (int n = 1; n < 200; n++)
        {
            term *= 2.0 * x2 / (2 * n + 1);
            sum += term;
            if (term < 1e-17 * sum) break;
        }
        double erf = 2.0 / Math.Sqrt(Math.PI) * Math.Exp(-x2) * sum;
        return x >= 0 ? erf : -erf;
    }
}
