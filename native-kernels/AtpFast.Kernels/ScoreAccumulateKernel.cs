using ILGPU;

namespace AtpFast.Kernels;

/// <summary>
/// Reduces per-example scores over the batch into per-node sums: for node n and example e, s_e,t at each position and
/// the all-positions value (the per-example sum over positions, or an explicit one: the QK fix's all-keys term);
/// sumAbs[id] += w·Σ_e |s|, sumSigned[id] += w·Σ_e s, ids laid out as <c>firstId + n·(T + 1) + t</c> with the @*
/// aggregate at t = T. One thread per (node, t ≤ T) — count·(T + 1) threads, so a node type with one node per layer
/// (resid_pre, attn_out, mlp_out) still spreads over T + 1 threads — each adding the examples in order
/// (deterministic, and the same additions in the same order as one thread per node would make). FLOPs: ~4 per score
/// (plus one add per score for the @* sum); bytes: 8 per score read, 32 per id updated.
/// </summary>
public static class ScoreAccumulateKernel
{
    /// <param name="index">(node, t): node·(T + 1) + t; node is a head, key/value head, neuron or 0; t = T is the @* node.</param>
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
    public static void Run(Index1D index, ArrayView<double> scores, ArrayView<double> allScores, ArrayView<double> sumAbs,
        ArrayView<double> sumSigned, int batch, int count, int seqLen, int firstId, double weight, Flag perPosition, Flag allPositions)
    {
        int node = index / (seqLen + 1), t = index % (seqLen + 1), id = firstId + index;
        if (t < seqLen)
        {
            if (!perPosition) return;
            double abs = sumAbs[id], signed = sumSigned[id];
            for (int e = 0; e < batch; e++)
            {
                double s = scores[(e * count + node) * seqLen + t];
                abs += weight * Math.Abs(s);
                signed += weight * s;
            }
            sumAbs[id] = abs;
            sumSigned[id] = signed;
            return;
        }
        if (!allPositions) return;
        double allAbs = sumAbs[id], allSigned = sumSigned[id];
        for (int e = 0; e < batch; e++)
        {
            double all = 0;
            if (allScores.Length > 0)
                all = allScores[e * count + node];
            else
                for (int u = 0; u < seqLen; u++) all += scores[(e * count + node) * seqLen + u];
            allAbs += weight * Math.Abs(all);
            allSigned += weight * all;
        }
        sumAbs[id] = allAbs;
        sumSigned[id] = allSigned;
    }
}
