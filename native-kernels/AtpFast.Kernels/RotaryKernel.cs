using ILGPU;

namespace AtpFast.Kernels;

/// <summary>
/// Rotary position embedding in place on [rows, heads·HeadDim]: pair (i0, i1) = (i, i + R/2) (half-split) or
/// (2i, 2i + 1) (interleaved) of the first R dims of each head rotated by position·θ_i; the inverse rotation for the
/// backward. cos/sin come from host tables [position, R/2] (the CPU backend's fp32 values). Row r is at position
/// firstPosition + r mod rowsPerSeq. One thread per (row, head, pair). FLOPs: 6 per pair; bytes: 4·(4 + 2) per pair.
/// </summary>
public static class RotaryKernel
{
    /// <param name="index">(row, head, pair).</param>
    /// <param name="qk">[rows, heads·headDim] in place.</param>
    /// <param name="cos">[positions, R/2].</param>
    /// <param name="sin">[positions, R/2].</param>
    /// <param name="heads">Heads in a row.</param>
    /// <param name="headDim">Per-head width.</param>
    /// <param name="half">R/2 rotated pairs.</param>
    /// <param name="interleaved">Interleaved pairing.</param>
    /// <param name="rowsPerSeq">Rows per sequence in this buffer.</param>
    /// <param name="firstPosition">Position of each sequence's first row.</param>
    /// <param name="inverse">Apply the transposed rotation (backward).</param>
    public static void Run(Index1D index, ArrayView<float> qk, ArrayView<float> cos, ArrayView<float> sin, int heads, int headDim,
        int half, Flag interleaved, int rowsPerSeq, int firstPosition, Flag inverse)
    {
        int i = index % half, rh = index / half, h = rh % heads, r = rh / heads;
        int p = firstPosition + r % rowsPerSeq;
        int baseIndex = r * heads * headDim + h * headDim;
        int i0 = baseIndex + (interleaved ? 2 * i : i), i1 = baseIndex + (interleaved ? 2 * i + 1 : i + half);
        float c = cos[p * half + i], s = inverse ? -sin[p * half + i] : sin[p * half + i];
        float x0 = qk[i0], x1 = qk[i1];
        qk[i0] = x0 * c - x1 * s;
        qk[i1] = x1 * c + x0 * s;
    }
}
