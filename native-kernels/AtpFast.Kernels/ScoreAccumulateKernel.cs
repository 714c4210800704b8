using ILGPU;

namespace AtpFast.Kernels;

/// <summary>
/// Reduces per-example scores over the batch into per-node sums: for node n and example e, s_e,t at each position and
/// the all-positions value (the per-example sum over positions, or an explicit one: the QK fix's all-keys term);
/// sumAbs[id] += w·Σ_e |s|, sumSigned[id] += w·Σ_e s, ids laid out as <c>firstId + n·(T + 1) + t</c> with the @*
/// aggregate at t = T. One thread per node, examples in order (deterministic). FLOPs: ~4 per score.
/// </summary>
public static class ScoreAccumulateKernel
{
    /// <param name="node">Node (head, key/value head, neuron or 0).</param>
    /// <param name="scores">[batch, count, T] per-example scores.</param>
    /// <param name="allScores">[batch, count] explicit all-positions scores, or empty.</param>
    /// <param name="sumAbs">[NodeSpace.Count] accumulated Σ w·|s|.</param>
    /// <param name="sumSigned">[NodeSpace.Count] accumulated Σ w·s.</param>
    /// <param name="batch">Examples.</param>
    /// <param name="count">Nodes per row.</param>
    /// <param name="seqLen">T.</param>
    /// <param name="firstId">Id of node 0 at position 0.</param>
    /// <param name="weight">The layer's weight w.</param>
    /// <param name="perPosition">Accumulate the per-position nodes.</param>
    /// <param name="allPositions">Accumulate the @* nodes.</param>
    public static void Run(Index1D node, ArrayView<double> scores, ArrayView<double> allScores, ArrayView<double> sumAbs,
        ArrayView<double> sumSigned, int batch, int count, int seqLen, int firstId, double weight, Flag perPosition, Flag allPositions)
    {
        int id = firstId + node * (seqLen + 1);
        for (int e = 0; e < batch; e++)
        {
            double all = 0;
            for (int t = 0; t < seqLen; t++)
            {
                double s = scores[(e * count + node) * seqLen + t];
                all += s;
                if (perPosition)
                {
                    sumAbs[id + t] += weight * Math.Abs(s);
                    sumSigned[id + t] += weight * s;
                }
            }
            if (allPositions)
            {
                if (allScores.Length > 0) all = allScores[e * count + node];
                sumAbs[id + seqLen] += weight * Math.Abs(all);
                sumSigned[id + seqLen] += weight * all;
            }
        }
    }
}
