using ILGPU;

namespace AtpFast.Kernels;

/// <summary>
/// Copies rows between buffers laid out as runs of positions: compact row j of run r moves from source row
/// <c>src.Row(j)</c> (of run <c>runs[r]</c> when a run map is given) to <c>dst.Row(j)</c>. Gathers the rows a block
/// step computes, scatters them back, seeds patched runs from a cached run's residual stream. One thread per element;
/// bytes: 8 per element.
/// </summary>
public static class RowCopyKernel
{
    /// <param name="index">Element (compact row, feature).</param>
    /// <param name="source">Source buffer.</param>
    /// <param name="destination">Destination buffer.</param>
    /// <param name="runs">Source run of each destination run (empty: the same run).</param>
    /// <param name="width">Row width.</param>
    /// <param name="src">Source rows.</param>
    /// <param name="dst">Destination rows.</param>
    public static void Run(Index1D index, ArrayView<float> source, ArrayView<float> destination, ArrayView<int> runs, int width,
        RowMap src, RowMap dst)
    {
        int j = index / width, f = index % width;
        int run = j / src.PerRun, sourceRun = runs.Length > 0 ? runs[run] : run;
        int from = sourceRun * src.RowsPerRun + src.First + j % src.PerRun;
        destination[dst.Row(j) * width + f] = source[from * width + f];
    }
}
