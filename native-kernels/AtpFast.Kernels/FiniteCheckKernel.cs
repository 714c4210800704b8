using ILGPU;

namespace AtpFast.Kernels;

/// <summary>Flags slices holding a NaN or an infinity: <c>flags[i] = 1</c> when any of values[i·length .. (i+1)·length)
/// is not finite (so a pass can name the example where a non-finite value appeared without copying activations to the
/// host). The flags must be cleared beforehand; a pass gives each of its checks its own row of flags and reads them all
/// back once at its end. One thread per element; threads of a slice that find a non-finite value all store the same 1
/// (a benign race, no atomics needed). Bytes: 4 per element read.</summary>
public static class FiniteCheckKernel
{
    /// <param name="element">Element of <paramref name="values"/>.</param>
    /// <param name="values">[slices·length] values.</param>
    /// <param name="flags">[slices] flags, cleared by the caller; set to 1, never reset.</param>
    /// <param name="length">Elements per slice (an example, or a patched run).</param>
    public static void Run(Index1D element, ArrayView<float> values, ArrayView<int> flags, int length)
    {
        if (!float.IsFinite(values[element])) flags[element / length] = 1;
    }
}
