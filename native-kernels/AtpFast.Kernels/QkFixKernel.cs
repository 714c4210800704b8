using ILGPU;

namespace AtpFast.Kernels;

/// <summary>Shape of the QK-fix kernels: a batch of T-token sequences.</summary>
public readonly record struct QkShape(int Batch, int T, int Heads, int Group, int HeadDim, int QueryWidth, int KvWidth, float Scale,
    Flag Query, Flag Key, Flag AllKeys);

/// <summary>
/// The QK fix (spec §3) for every head at once, in two parts. <see cref="Build"/> (once per pair of runs, per
/// (sequence, head, query row t)): the g-independent tables — A'_ts − A_ts with the source's query (queries); the closed
/// form's ratio a(e^Δ−1)/(1 + a(e^Δ−1)) with accurate probabilities and the row maximum, evaluated in double without
/// cancellation (see the CPU backend's QkFix) (keys); A'_ts − A_ts with every key from the source (k@*). Row
/// recomputations share the attention kernel's softmax, so an unchanged row gives exactly 0. <see cref="ApplyRows"/>
/// and <see cref="ApplyKeys"/> (per backward pass, with that pass's ∂L/∂A = g): query scores Σ_s (A' − A)·g, each row's
/// g_s* − G = Σ_{s≠s*} A_s(g_s* − g_s), then per (sequence, key/value head, key s) Σ_heads Σ_{t≥s} ratio·(g_ts − G_t),
/// and the all-keys scores. FLOPs: 6·HeadDim·T² per head (build), ~6·T² per head (apply).
/// </summary>
public static class QkFixKernel
{
    /// <param name="index">(sequence, head, t).</param>
    /// <param name="baseQ">[batch·T, QueryWidth] base queries.</param>
    /// <param name="baseK">[batch·T, KvWidth] base keys.</param>
    /// <param name="sourceQ">Source queries.</param>
    /// <param name="sourceK">Source keys.</param>
    /// <param name="probs">[batch, H, T, T] base probabilities.</param>
    /// <param name="scratch">[batch, H, T, T] float work rows.</param>
    /// <param name="queryDelta">[batch, H, T, T] output A' − A (source query).</param>
    /// <param name="ratio">[batch, H, T, T] output closed-form ratio.</param>
    /// <param name="probability">[batch, H, T, T] output accurate A.</param>
    /// <param name="top">[batch, H, T] output row maximum index.</param>
    /// <param name="allDelta">[batch, H, T, T] output A' − A (all source keys).</param>
    /// <param name="s">Shape.</param>
    public static void Build(Index1D index, ArrayView<float> baseQ, ArrayView<float> baseK, ArrayView<float> sourceQ,
        ArrayView<float> sourceK, ArrayView<float> probs, ArrayView<float> scratch, ArrayView<double> queryDelta,
        ArrayView<double> ratio, ArrayView<double> probability, ArrayView<int> top, ArrayView<double> allDelta, QkShape s)
    {
        int t = index % s.T, bh = index / s.T, h = bh % s.Heads, b = bh / s.Heads, kvh = h / s.Group, n = t + 1;
        int row = index * s.T, qBase = (b * s.T + t) * s.QueryWidth + h * s.HeadDim;
        // Every key from the cached run: P = T makes the attention helper read all keys from its "prefix" view.
        var attention = new AttentionShape(s.Heads, s.Group, s.HeadDim, s.QueryWidth, s.KvWidth, s.T, 0, 0, 0, s.T, s.Scale, false);
        if (s.Query)
        {
            AttentionKernel.Softmax(sourceQ, qBase, baseK, baseK, scratch, row, n, b, b, kvh, attention);
            for (int j = 0; j < n; j++) queryDelta[row + j] = (double)scratch[row + j] - probs[row + j];
        }
        if (s.AllKeys)
        {
            AttentionKernel.Softmax(baseQ, qBase, sourceK, sourceK, scratch, row, n, b, b, kvh, attention);
            for (int j = 0; j < n; j++) allDelta[row + j] = (double)scratch[row + j] - probs[row + j];
        }
        if (!s.Key) return;
        int best = 0;
        for (int j = 0; j < n; j++)
        {
            int kBase = (b * s.T + j) * s.KvWidth + kvh * s.HeadDim;
            float score = 0, delta = 0;
            for (int f = 0; f < s.HeadDim; f++)
            {
                score += baseQ[qBase + f] * baseK[kBase + f];
                delta += baseQ[qBase + f] * (sourceK[kBase + f] - baseK[kBase + f]);
            }
            ratio[row + j] = score * s.Scale;        // the scores for now
            probability[row + j] = delta * s.Scale;  // the score changes for now
            if (ratio[row + j] > ratio[row + best]) best = j;
        }
        double m = ratio[row + best], rest = 0;
        for (int j = 0; j < n; j++)
        {
            if (j != best) rest += Math.Exp(ratio[row + j] - m);
        }
        double logNorm = DeviceMath.Log1P(rest);
        for (int j = 0; j < n; j++)
        {
            double x = ratio[row + j] - m - logNorm, d = probability[row + j];
            double a = Math.Exp(x);
            double change = d < 1 ? a * DeviceMath.ExpM1(d) : Math.Exp(x + d) - a;
            ratio[row + j] = double.IsPositiveInfinity(change) ? 1.0 : change / (-DeviceMath.ExpM1(x) + Math.Exp(x + d));
            probability[row + j] = a;
        }
        top[index] = best;
    }

    /// <param name="index">(sequence, head, t).</param>
    /// <param name="dProbs">[batch, H, T, T] ∂L/∂A of this pass.</param>
    /// <param name="queryDelta">From <see cref="Build"/>.</param>
    /// <param name="probability">From <see cref="Build"/>.</param>
    /// <param name="top">From <see cref="Build"/>.</param>
    /// <param name="allDelta">From <see cref="Build"/>.</param>
    /// <param name="queryScores">[batch, H, T] output Σ_s (A' − A)·g.</param>
    /// <param name="topMinusMean">[batch, H, T] output g_s* − G per row.</param>
    /// <param name="allRowScores">[batch, H, T] output Σ_s (A'_all − A)·g.</param>
    /// <param name="s">Shape.</param>
    public static void ApplyRows(Index1D index, ArrayView<float> dProbs, ArrayView<double> queryDelta, ArrayView<double> probability,
        ArrayView<int> top, ArrayView<double> allDelta, ArrayView<double> queryScores, ArrayView<double> topMinusMean,
        ArrayView<double> allRowScores, QkShape s)
    {
        int t = index % s.T, n = t + 1, row = index * s.T;
        if (s.Query)
        {
            double sum = 0;
            for (int j = 0; j < n; j++) sum += queryDelta[row + j] * dProbs[row + j];
            queryScores[index] = sum;
        }
        if (s.AllKeys)
        {
            double sum = 0;
            for (int j = 0; j < n; j++) sum += allDelta[row + j] * dProbs[row + j];
            allRowScores[index] = sum;
        }
        if (s.Key)
        {
            int best = top[index];
            double gTop = dProbs[row + best], d = 0;
            for (int j = 0; j < n; j++)
            {
                if (j != best) d += probability[row + j] * (gTop - dProbs[row + j]);
            }
            topMinusMean[index] = d;
        }
    }

    /// <param name="index">(sequence, key/value head, key s).</param>
    /// <param name="dProbs">[batch, H, T, T] ∂L/∂A of this pass.</param>
    /// <param name="ratio">From <see cref="Build"/>.</param>
    /// <param name="top">From <see cref="Build"/>.</param>
    /// <param name="topMinusMean">From <see cref="ApplyRows"/>.</param>
    /// <param name="allRowScores">From <see cref="ApplyRows"/>.</param>
    /// <param name="keyScores">[batch, KvHeads, T] output.</param>
    /// <param name="allKeyScores">[batch, KvHeads] output (written by the thread of key 0).</param>
    /// <param name="s">Shape.</param>
    public static void ApplyKeys(Index1D index, ArrayView<float> dProbs, ArrayView<double> ratio, ArrayView<int> top,
        ArrayView<double> topMinusMean, ArrayView<double> allRowScores, ArrayView<double> keyScores, ArrayView<double> allKeyScores, QkShape s)
    {
        int kvHeads = s.Heads / s.Group;
        int j = index % s.T, bk = index / s.T, kvh = bk % kvHeads, b = bk / kvHeads;
        double sum = 0, all = 0;
        for (int h = kvh * s.Group; h < (kvh + 1) * s.Group; h++)
        {
            for (int t = 0; t < s.T; t++)
            {
                int rowIndex = (b * s.Heads + h) * s.T + t, row = rowIndex * s.T;
                if (s.AllKeys && j == 0) all += allRowScores[rowIndex];
                if (!s.Key || t < j) continue;
                int best = top[rowIndex];
                double d = topMinusMean[rowIndex];
                sum += ratio[row + j] * (j == best ? d : dProbs[row + j] - dProbs[row + best] + d);
            }
        }
        if (s.Key) keyScores[index] = sum;
        if (s.AllKeys && j == 0) allKeyScores[bk] = all;
    }
}
