using System.Numerics;
using System.Numerics.Tensors;

namespace AtpFast.Cpu;

/// <summary>
/// MLP nonlinearities and their derivatives over a block of rows [rows, width], written as the reference
/// definitions (PyTorch's formulas) and computed row by row, in parallel, with vector operations on rows that stay in
/// L1 (whole-buffer passes were memory-bound and single-threaded: GELU cost more than the MLP's GEMMs). Each row is
/// processed by the same operations whatever the number of rows, so a row computed alone equals the same row in a
/// batch. fp32 and fp64 share the code; erf is the one function computed differently (a 1.2e-7 approximation in
/// fp32, a series accurate to ~1e-16 in fp64, where gradient checks need it).
/// GELU's tanh form is evaluated as x·σ(2u), u = √(2/π)·(x + 0.044715x³), which equals 0.5·x·(1 + tanh u).
/// </summary>
internal static class Activations
{
    private const double SqrtHalf = 0.70710678118654752;
    private const double SqrtTwoOverPi = 0.79788456080286536;
    private const double InvSqrtTwoPi = 0.39894228040143268;
    private const double TanhCubic = 0.044715;

    /// <summary>post = act(up), or silu(gate)·up for SwiGLU, for <paramref name="rows"/> rows of <paramref name="width"/>.
    /// Pre-activations are left intact.</summary>
    /// <param name="activation">The nonlinearity.</param>
    /// <param name="up">[rows, width] pre-activation of the input ("up") projection.</param>
    /// <param name="gate">[rows, width] pre-activation of the gate (SwiGLU only; ignored otherwise).</param>
    /// <param name="post">[rows, width] output.</param>
    /// <param name="rows">Rows.</param>
    /// <param name="width">Neurons per row.</param>
    /// <param name="parallel">Degree of parallelism.</param>
    public static void Forward<T>(MlpActivation activation, T[] up, T[] gate, T[] post, int rows, int width, ParallelOptions parallel)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        ForRows<T>(rows, width, parallel, 2, (r, s) =>
        {
            var x = up.AsSpan(r * width, width);
            var y = post.AsSpan(r * width, width);
            switch (activation)
            {
                case MlpActivation.SwiGlu:
                    var g = gate.AsSpan(r * width, width);
                    TensorPrimitives.Sigmoid(g, s[0]);
                    TensorPrimitives.Multiply(g, s[0], y);
                    TensorPrimitives.Multiply(y, x, y);
                    break;
                case MlpActivation.GeluTanh:
                    TwiceTanhArgument(x, s[0]);
                    TensorPrimitives.Sigmoid(s[0], s[0]);
                    TensorPrimitives.Multiply(x, s[0], y);
                    break;
                case MlpActivation.GeluErf:
                    Phi(x, y, s[0], s[1]); // y = Φ(x)
                    TensorPrimitives.Multiply(x, y, y);
                    break;
                case MlpActivation.Relu:
                    TensorPrimitives.Max(x, T.Zero, y);
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(activation));
            }
        });

    /// <summary>Back-propagates ∂L/∂post to the pre-activations.</summary>
    /// <param name="activation">The nonlinearity.</param>
    /// <param name="up">[rows, width] pre-activation of the input projection.</param>
    /// <param name="gate">[rows, width] pre-activation of the gate (SwiGLU only).</param>
    /// <param name="dPost">[rows, width] ∂L/∂post.</param>
    /// <param name="dUp">[rows, width] output ∂L/∂up.</param>
    /// <param name="dGate">[rows, width] output ∂L/∂gate (SwiGLU only).</param>
    /// <param name="rows">Rows.</param>
    /// <param name="width">Neurons per row.</param>
    /// <param name="parallel">Degree of parallelism.</param>
    public static void Backward<T>(MlpActivation activation, T[] up, T[] gate, T[] dPost, T[] dUp, T[] dGate, int rows, int width,
        ParallelOptions parallel)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        ForRows<T>(rows, width, parallel, 3, (r, s) =>
        {
            var x = up.AsSpan(r * width, width);
            var dy = dPost.AsSpan(r * width, width);
            var dx = dUp.AsSpan(r * width, width);
            switch (activation)
            {
                case MlpActivation.SwiGlu:
                {
                    // post = g·σ(g)·u: ∂/∂u = g·σ(g); ∂/∂g = u·σ(g)·(1 + g·(1 − σ(g))).
                    var g = gate.AsSpan(r * width, width);
                    var dg = dGate.AsSpan(r * width, width);
                    var sig = s[0];
                    TensorPrimitives.Sigmoid(g, sig);
                    TensorPrimitives.Multiply(g, sig, s[1]);          // silu(g)
                    TensorPrimitives.Multiply(dy, s[1], dx);
                    TensorPrimitives.Subtract(g, s[1], s[2]);         // g − g·σ = g·(1 − σ)
                    TensorPrimitives.Add(s[2], T.One, s[2]);
                    TensorPrimitives.Multiply(s[2], sig, s[2]);
                    TensorPrimitives.Multiply(s[2], x, s[2]);
                    TensorPrimitives.Multiply(s[2], dy, dg);
                    break;
                }
                case MlpActivation.GeluTanh:
                {
                    // y = x·σ(2u): dy/dx = σ + x·σ·(1 − σ)·2u', 2u' = 2√(2/π)·(1 + 3·0.044715·x²).
                    var sig = s[0];
                    TwiceTanhArgument(x, sig);
                    TensorPrimitives.Sigmoid(sig, sig);
                    TensorPrimitives.Multiply(x, x, s[1]);
                    TensorPrimitives.Multiply(s[1], T.CreateTruncating(3 * TanhCubic), s[1]);
                    TensorPrimitives.Add(s[1], T.One, s[1]);
                    TensorPrimitives.Multiply(s[1], T.CreateTruncating(2 * SqrtTwoOverPi), s[1]);   // 2u'
                    TensorPrimitives.Subtract(T.One, sig, s[2]);
                    TensorPrimitives.Multiply(s[2], sig, s[2]);
                    TensorPrimitives.Multiply(s[2], x, s[2]);
                    TensorPrimitives.MultiplyAdd(s[2], s[1], sig, s[2]);
                    TensorPrimitives.Multiply(s[2], dy, dx);
                    break;
                }
                case MlpActivation.GeluErf:
                    // d/dx x·Φ(x) = Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π).
                    Phi(x, s[0], s[1], s[2]);
                    TensorPrimitives.Multiply(x, x, s[1]);
                    TensorPrimitives.Multiply(s[1], T.CreateTruncating(-0.5), s[1]);
                    TensorPrimitives.Exp(s[1], s[1]);
                    TensorPrimitives.Multiply(s[1], x, s[1]);
                    TensorPrimitives.MultiplyAdd(s[1], T.CreateTruncating(InvSqrtTwoPi), s[0], s[0]);
                    TensorPrimitives.Multiply(s[0], dy, dx);
                    break;
                case MlpActivation.Relu:
                    for (int i = 0; i < width; i++) dx[i] = x[i] > T.Zero ? dy[i] : T.Zero;
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(activation));
            }
        });

    private delegate void RowAction<T>(int row, Scratch<T> scratch);

    /// <summary>Scratch rows of one task: <c>s[i]</c> is row i.</summary>
    private readonly ref struct Scratch<T>(Span<T> buffer, int width)
    {
        private readonly Span<T> _buffer = buffer;

        public Span<T> this[int i] => _buffer.Slice(i * width, width);
    }

    /// <summary>Runs <paramref name="action"/> on every row, in parallel over blocks of rows, with per-task scratch rows.</summary>
    private static void ForRows<T>(int rows, int width, ParallelOptions parallel, int scratchRows, RowAction<T> action)
    {
        const int Block = 16;
        int blocks = (rows + Block - 1) / Block;
        Parallel.For(0, blocks, parallel, () => new T[scratchRows * width], (block, _, buffer) =>
        {
            for (int r = block * Block; r < Math.Min(rows, (block + 1) * Block); r++) action(r, new Scratch<T>(buffer, width));
            return buffer;
        }, _ => { });
    }

    /// <summary>scratch = 2u = 2√(2/π)·x·(1 + 0.044715·x²), twice GELU's tanh argument.</summary>
    private static void TwiceTanhArgument<T>(ReadOnlySpan<T> x, Span<T> scratch) where T : unmanaged, IFloatingPointIeee754<T>
    {
        TensorPrimitives.Multiply(x, x, scratch);
        TensorPrimitives.Multiply(scratch, T.CreateTruncating(TanhCubic), scratch);
        TensorPrimitives.Add(scratch, T.One, scratch);
        TensorPrimitives.Multiply(scratch, x, scratch);
        TensorPrimitives.Multiply(scratch, T.CreateTruncating(2 * SqrtTwoOverPi), scratch);
    }

    /// <summary>Φ(x) = 0.5·(1 + erf(x/√2)) into <paramref name="phi"/>: fp64 by the precise series, fp32 by Numerical
    /// Recipes' erfc approximation (|error| below 1.2e-7) vectorised: z = |x|/√2, t = 1/(1 + z/2),
    /// erfc(z) = t·exp(−z² + P(t)), Φ(x) = 1 − erfc/2 for x ≥ 0 and erfc/2 for x &lt; 0.</summary>
    private static void Phi<T>(ReadOnlySpan<T> x, Span<T> phi, Span<T> z, Span<T> p) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(double))
        {
            for (int i = 0; i < x.Length; i++)
                phi[i] = T.CreateTruncating(0.5 * (1.0 + ErfPrecise(double.CreateTruncating(x[i]) * SqrtHalf)));
            return;
        }
        ReadOnlySpan<double> c = [-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277];
        TensorPrimitives.Abs(x, z);
        TensorPrimitives.Multiply(z, T.CreateTruncating(SqrtHalf), z);
        TensorPrimitives.Multiply(z, T.CreateTruncating(0.5), phi);
        TensorPrimitives.Add(phi, T.One, phi);
        TensorPrimitives.Reciprocal(phi, phi); // t
        p.Fill(T.CreateTruncating(c[9]));
        for (int k = 8; k >= 0; k--) TensorPrimitives.MultiplyAdd(p, phi, T.CreateTruncating(c[k]), p); // Horner: P(t)
        TensorPrimitives.Multiply(z, z, z);
        TensorPrimitives.Subtract(p, z, p);   // P(t) − z²
        TensorPrimitives.Exp(p, p);
        TensorPrimitives.Multiply(p, phi, p); // erfc(z)
        TensorPrimitives.Multiply(p, T.CreateTruncating(0.5), p);
        for (int i = 0; i < x.Length; i++) phi[i] = x[i] >= T.Zero ? T.One - p[i] : p[i];
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
