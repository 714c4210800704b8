using ILGPU;

namespace AtpFast.Kernels;

/// <summary>
/// The MLP nonlinearity's backward, element-wise: ∂L/∂up (and ∂L/∂gate for SwiGLU) from ∂L/∂post and the cached
/// pre-activations. GELU erf: Φ(x) + x·φ(x); GELU tanh (x·σ(2u)): σ + x·σ(1 − σ)·2u'; ReLU: step; SwiGLU:
/// ∂/∂up = g·σ(g), ∂/∂gate = up·σ(g)·(1 + g(1 − σ(g))). FLOPs ~20 per element; bytes 4·(3–5) per element.
/// </summary>
public static class ActivationBackwardKernel
{
    private const float InvSqrtTwoPi = 0.39894228040143268f;
    private const float TwoSqrtTwoOverPi = 1.5957691216057308f;
    private const float TanhCubic = 0.044715f;

    /// <param name="index">Element.</param>
    /// <param name="up">Pre-activation of the up projection.</param>
    /// <param name="gate">Pre-activation of the gate (SwiGLU).</param>
    /// <param name="dPost">∂L/∂post.</param>
    /// <param name="dUp">Output ∂L/∂up.</param>
    /// <param name="dGate">Output ∂L/∂gate (SwiGLU).</param>
    /// <param name="kind">The nonlinearity.</param>
    public static void Run(Index1D index, ArrayView<float> up, ArrayView<float> gate, ArrayView<float> dPost, ArrayView<float> dUp,
        ArrayView<float> dGate, ActivationKind kind)
    {
        float x = up[index], dy = dPost[index];
        if (kind == ActivationKind.SwiGlu)
        {
            float g = gate[index], sg = DeviceMath.Sigmoid(g);
            dUp[index] = dy * g * sg;
            dGate[index] = dy * x * sg * (1f + g * (1f - sg));
        }
        else if (kind == ActivationKind.GeluTanh)
        {
            float sg = DeviceMath.Sigmoid(TwoSqrtTwoOverPi * x * (1f + TanhCubic * x * x));
            float du = TwoSqrtTwoOverPi * (1f + 3f * TanhCubic * x * x);
            dUp[index] = dy * (sg + x * sg * (1f - sg) * du);
        }
        else if (kind == ActivationKind.GeluErf)
        {
            dUp[index] = dy * (DeviceMath.Phi(x) + x * InvSqrtTwoPi * MathF.Exp(-0.5f * x * x));
        }
        else
        {
            dUp[index] = x > 0 ? dy : 0f;
        }
    }
}
