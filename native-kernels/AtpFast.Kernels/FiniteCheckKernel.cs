using ILGPU;

namespace AtpFast.Kernels;

/// <summary>Flags slices holding a NaN or an infinity: <c>flags[i] = 1</c> when any of values[i·length .. (i+1)·length)
/// is not finite (so a pass can name the example where a non-finite value appeared without copying activations to the
/// host). One thread per slice; bytes: 4 per element.</summary>
public static class FiniteCheckKernel
{
    /// <param name="slice">Slice (an example, or a patched run).</param>
    /// <param name="values">Values.</param>
    /// <param name="flags">[slices] output.</param>
    /// <param name="length">Elements per slice.</param>
    public static void Run(Index1D slice, ArrayView<float> values, ArrayView<int> flags, int length)
    {
        int bad = 0;
        for (int i = slice * length; i < (slice + 1) * length; i++)
        {
            if (!float.IsFinite(values[i])) bad = 1;
        }
        flags[slice] = bad;
    }
}
