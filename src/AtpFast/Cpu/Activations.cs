using System.Numerics.Tensors;

namespace AtpFast.Cpu;

/// <summary>Scalar MLP nonlinearities, written as the reference definitions (PyTorch's formulas).</summary>
internal static class Activations
{
    private const float SqrtHalf = 0.70710678118654752f;
    private const float SqrtTwoOverPi = 0.79788456080286536f;

    /// <summary>x·Φ(x) = 0.5·x·(1 + erf(x/√2)).</summary>
    public static float GeluErf(float x) => 0.5f * x * (1f + Erf(x * SqrtHalf));

    /// <summary>GELU, tanh form, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), in place and vectorised (a scalar
    /// tanh per element cost more than all the GEMMs of the IOI model's forward).</summary>
    /// <param name="x">Values, overwritten with GELU(x).</param>
    /// <param name="scratch">Work space of the same length.</param>
    public static void GeluTanh(Span<float> x, Span<float> scratch)
    {
        // scratch = √(2/π)·(x + 0.044715·x³) = √(2/π)·x·(1 + 0.044715·x²)
        TensorPrimitives.Multiply(x, x, scratch);
        TensorPrimitives.Multiply(scratch, 0.044715f, scratch);
        TensorPrimitives.Add(scratch, 1f, scratch);
        TensorPrimitives.Multiply(scratch, x, scratch);
        TensorPrimitives.Multiply(scratch, SqrtTwoOverPi, scratch);
        TensorPrimitives.Tanh(scratch, scratch);
        // x = 0.5·x·(1 + tanh)
        TensorPrimitives.Add(scratch, 1f, scratch);
        TensorPrimitives.Multiply(x, scratch, x);
        TensorPrimitives.Multiply(x, 0.5f, x);
    }

    /// <summary>erf in double precision (rational approximation with |error| &lt; 1.2e-7, Numerical Recipes erfc),
    /// rounded to fp32.</summary>
    public static float Erf(float x)
    {
        double z = Math.Abs((double)x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double erfc = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
                      t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
                      t * (-0.82215223 + t * 0.17087277)))))))));
        double erf = 1.0 - erfc;
        return (float)(x >= 0 ? erf : -erf);
    }
}
