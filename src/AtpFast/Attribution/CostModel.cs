namespace AtpFast.Attribution;

/// <summary>
/// Cost in forward-pass equivalents, from a FLOP count of what the passes execute. The unit is one forward pass of
/// one prompt of T tokens: every block at every position plus the full-vocabulary unembedding of the last position.
/// Counted: the matrix products (2 FLOPs per multiply-add: the q/k/v, output, MLP projections and the
/// unembedding) and attention's score and mixing products (4·HeadDim per query–key pair and head); norms and
/// element-wise nonlinearities (O(d) per row against O(d²)) are not. The activation-only backward counts its
/// matrix products (the same count as the forward's: Wᵀ products, no weight gradients), attention's backward
/// (8·HeadDim per pair and head) and the unembedding's nonzero columns. The attribution products count 2 FLOPs per
/// activation element scored; the QK fix its score-sized products. A patched run counts the rows
/// <see cref="PatchPlan"/> recomputes: from its start layer and position, the start block at one position for a
/// single-position node, the last block's queries and MLP at the last position only, and the metric's columns.
/// </summary>
public sealed class CostModel
{
    private readonly ModelConfig _c;
    private readonly int _seqLen;

    /// <summary>The accounting of <paramref name="config"/> on prompts of <paramref name="seqLen"/> tokens.</summary>
    public CostModel(ModelConfig config, int seqLen)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfLessThan(seqLen, 1);
        _c = config;
        _seqLen = seqLen;
        ForwardFlops = _c.Layers * BlockFlops(seqLen, seqLen, Pairs(0, seqLen)) + 2.0 * _c.DModel * _c.VocabSize;
    }

    /// <summary>FLOPs of the unit: one forward pass of one prompt.</summary>
    public double ForwardFlops { get; }

    /// <summary>One cached forward: 1 by definition.</summary>
    public double Forward => 1.0;

    /// <summary>One activation-only backward of one prompt through every block.</summary>
    /// <param name="metricColumns">Logit columns with a nonzero gradient (2 for the logit differences, else the vocabulary).</param>
    public double Backward(int metricColumns) => (_c.Layers * BlockBackwardFlops() + 2.0 * _c.DModel * metricColumns) / ForwardFlops;

    /// <summary>The GradDrop pass that detaches block <paramref name="droppedLayer"/>: the blocks below it.</summary>
    public double GradDropPass(int droppedLayer) => droppedLayer * BlockBackwardFlops() / ForwardFlops;

    /// <summary>One reduction of Δactivation·gradient over every node of one prompt, plus the QK fix's products.</summary>
    /// <param name="layers">Layers scored.</param>
    /// <param name="qkFix">Whether the QK fix runs (query rows recomputed, key deltas, and all-keys rows).</param>
    public double Products(int layers, bool qkFix)
    {
        double perLayer = 2.0 * _seqLen * (2 * _c.QueryWidth + 2 * _c.KvWidth + _c.DMlp + 3 * _c.DModel);
        if (qkFix) perLayer += 3 * 2.0 * _c.HeadDim * _c.Heads * Pairs(0, _seqLen);
        return layers * perLayer / ForwardFlops;
    }

    /// <summary>One exactly patched run of one prompt.</summary>
    /// <param name="plan">Where the run starts.</param>
    /// <param name="metricColumns">Columns unembedded at the end (2 for the logit differences, else the vocabulary).</param>
    public double Patched(PatchPlan plan, int metricColumns)
    {
        if (plan.NoEffect) return 0;
        int t = _seqLen, s = t - plan.Position, last = _c.Layers - 1;
        double flops = 2.0 * _c.DModel * metricColumns;
        for (int l = plan.Layer; l <= last; l++)
        {
            if (plan.OnePosition && l == plan.Layer)
                flops += BlockFlops(1, 1, plan.Position + 1);
            else if (l == last)
                flops += BlockFlops(s, 1, t);
            else
                flops += BlockFlops(s, s, Pairs(plan.Position, t));
        }
        return flops / ForwardFlops;
    }

    /// <summary>Query–key pairs of causal rows from..to−1 (row t attends to t + 1 keys).</summary>
    private static double Pairs(int from, int to) => ((double)to * (to + 1) - (double)from * (from + 1)) / 2;

    /// <summary>One block: <paramref name="keyRows"/> rows through the norm and q/k/v projections,
    /// <paramref name="queryRows"/> through the output projection and MLP, and <paramref name="pairs"/> query–key
    /// pairs per head.</summary>
    private double BlockFlops(double keyRows, double queryRows, double pairs)
    {
        double d = _c.DModel, mlp = _c.DMlp * (_c.GatedMlp ? 3.0 : 2.0);
        return 2 * keyRows * d * (_c.QueryWidth + 2.0 * _c.KvWidth)
             + 4.0 * _c.HeadDim * _c.Heads * pairs
             + 2 * queryRows * (_c.QueryWidth * d + d * mlp);
    }

    /// <summary>One block's activation-only backward on every position.</summary>
    private double BlockBackwardFlops()
    {
        double d = _c.DModel, mlp = _c.DMlp * (_c.GatedMlp ? 3.0 : 2.0), rows = _seqLen;
        return 2 * rows * d * (_c.QueryWidth + 2.0 * _c.KvWidth) + 2 * rows * (_c.QueryWidth * d + d * mlp)
             + 8.0 * _c.HeadDim * _c.Heads * Pairs(0, _seqLen);
    }
}
