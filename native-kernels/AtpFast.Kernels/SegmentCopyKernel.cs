using ILGPU;

namespace AtpFast.Kernels;

/// <summary>
/// Copies equal-length segments listed by offset: <c>destination[to[i] + f] = source[from[i] + f]</c>. Patch
/// injection: every patched node's slice (a head's HeadDim features, a neuron, a d-wide row) of one site is copied from
/// the source run into the rows being recomputed in one launch. One thread per element; bytes: 8 per element.
/// </summary>
public static class SegmentCopyKernel
{
    /// <param name="index">Element (segment, feature).</param>
    /// <param name="source">Source buffer.</param>
    /// <param name="destination">Destination buffer.</param>
    /// <param name="from">[segments] source offsets.</param>
    /// <param name="to">[segments] destination offsets.</param>
    /// <param name="length">Elements per segment.</param>
    public static void Run(Index1D index, ArrayView<float> source, ArrayView<float> destination, ArrayView<int> from,
        ArrayView<int> to, int length)
    {
        int segment = index / length, f = index % length;
        destination[to[segment] + f] = source[from[segment] + f];
    }
}
