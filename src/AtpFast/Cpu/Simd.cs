using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace AtpFast.Cpu;

/// <summary>
/// Reductions whose summation order depends only on the length, never on the address. TensorPrimitives aligns its
/// reductions to the data's address, so the same row summed at two addresses can differ in the last bit; exact
/// patching must reproduce the cached run bit for bit (patching a node with its own value gives exactly 0), so
/// every reduction on the pass paths goes through here.
/// </summary>
internal static class Simd
{
    /// <summary>Σ x_i·y_i.</summary>
    public static T Dot<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y) where T : unmanaged, INumber<T>
    {
        int n = x.Length, i = 0;
        T sum = T.Zero;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported && n >= Vector256<T>.Count)
        {
            int w = Vector256<T>.Count;
            ref T rx = ref MemoryMarshal.GetReference(x);
            ref T ry = ref MemoryMarshal.GetReference(y);
            Vector256<T> a0 = Vector256<T>.Zero, a1 = Vector256<T>.Zero;
            for (; i <= n - 2 * w; i += 2 * w)
            {
                a0 += Vector256.LoadUnsafe(ref rx, (nuint)i) * Vector256.LoadUnsafe(ref ry, (nuint)i);
                a1 += Vector256.LoadUnsafe(ref rx, (nuint)(i + w)) * Vector256.LoadUnsafe(ref ry, (nuint)(i + w));
            }
            if (i <= n - w)
            {
                a0 += Vector256.LoadUnsafe(ref rx, (nuint)i) * Vector256.LoadUnsafe(ref ry, (nuint)i);
                i += w;
            }
            sum = Vector256.Sum(a0 + a1);
        }
        for (; i < n; i++) sum += x[i] * y[i];
        return sum;
    }

    /// <summary>Σ x_i.</summary>
    public static T Sum<T>(ReadOnlySpan<T> x) where T : unmanaged, INumber<T>
    {
        int n = x.Length, i = 0;
        T sum = T.Zero;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported && n >= Vector256<T>.Count)
        {
            int w = Vector256<T>.Count;
            ref T rx = ref MemoryMarshal.GetReference(x);
            Vector256<T> a0 = Vector256<T>.Zero, a1 = Vector256<T>.Zero;
            for (; i <= n - 2 * w; i += 2 * w)
            {
                a0 += Vector256.LoadUnsafe(ref rx, (nuint)i);
                a1 += Vector256.LoadUnsafe(ref rx, (nuint)(i + w));
            }
            if (i <= n - w)
            {
                a0 += Vector256.LoadUnsafe(ref rx, (nuint)i);
                i += w;
            }
            sum = Vector256.Sum(a0 + a1);
        }
        for (; i < n; i++) sum += x[i];
        return sum;
    }

    /// <summary>Σ x_i².</summary>
    public static T SumOfSquares<T>(ReadOnlySpan<T> x) where T : unmanaged, INumber<T> => Dot(x, x);

    /// <summary>True when every element is finite (no NaN, no infinity).</summary>
    public static bool AllFinite<T>(ReadOnlySpan<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        // x·0 is 0 for finite x and NaN otherwise; summing those in vectors keeps the check cheap.
        int n = x.Length, i = 0;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported && n >= Vector256<T>.Count)
        {
            int w = Vector256<T>.Count;
            ref T rx = ref MemoryMarshal.GetReference(x);
            var acc = Vector256<T>.Zero;
            for (; i <= n - w; i += w) acc += Vector256.LoadUnsafe(ref rx, (nuint)i) * Vector256<T>.Zero;
            if (!T.IsFinite(Vector256.Sum(acc))) return false;
        }
        for (; i < n; i++)
        {
            if (!T.IsFinite(x[i])) return false;
        }
        return true;
    }
}

/// <summary>exp(x) − 1 and log(1 + x) accurate near 0 (the BCL's float/double ExpM1 and LogP1 are computed as
/// Exp(x) − 1 and Log(x + 1), which lose every digit there). Kahan's corrections, a few ulps in double.</summary>
internal static class Accurate
{
    /// <summary>exp(x) − 1.</summary>
    public static double ExpM1(double x)
    {
        double u = Math.Exp(x);
        if (u == 1.0) return x;
        double um1 = u - 1.0;
        if (um1 == -1.0) return -1.0;
        if (double.IsPositiveInfinity(u)) return u;
        return um1 * x / Math.Log(u);
    }

    /// <summary>log(1 + x) for x ≥ −1.</summary>
    public static double Log1P(double x)
    {
        double u = 1.0 + x;
        if (u == 1.0) return x;
        if (double.IsPositiveInfinity(u)) return u;
        return Math.Log(u) * x / (u - 1.0);
    }
}
