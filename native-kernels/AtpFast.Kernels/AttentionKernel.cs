using ILGPU;

namespace AtpFast.Kernels;

/// <summary>Shape of <see cref="AttentionKernel"/>: R sequences whose recomputed rows start at absolute position P;
/// keys/values exist for local positions [0, Kb) (query rows are computed at local [Qa, Qb)); positions below P come
/// from a cached run (example <c>examples[r]</c>, T positions per example).</summary>
/// <param name="Heads">Query heads.</param>
/// <param name="Group">Query heads per key/value head.</param>
/// <param name="HeadDim">Per-head width.</param>
/// <param name="QueryWidth">Heads·HeadDim.</param>
/// <param name="KvWidth">KvHeads·HeadDim.</param>
/// <param name="P">Absolute position of local position 0.</param>
/// <param name="Kb">Local positions with recomputed keys (and queries).</param>
/// <param name="Qa">First local query row.</param>
/// <param name="Qb">End of the local query rows.</param>
/// <param name="T">Positions per example in the cached run (P + positions held per run).</param>
/// <param name="Scale">1/√HeadDim.</param>
/// <param name="KeepProbabilities">Write rows to the cached [batch, H, T, T] layout (a run), not to scratch rows.</param>
public readonly record struct AttentionShape(int Heads, int Group, int HeadDim, int QueryWidth, int KvWidth, int P, int Kb,
    int Qa, int Qb, int T, float Scale, Flag KeepProbabilities);

/// <summary>
/// Causal softmax attention keeping the probabilities (AtP* needs them): per (sequence, head, query row t) the scores
/// q_t·k_s/√d for s ≤ t, their softmax (row maximum subtracted) and z_t = Σ_s A_ts·v_s, with grouped-query sharing.
/// One thread per row, keys in order, so a row does not depend on the rest of the batch. FLOPs: 4·HeadDim·(t+1) per
/// row (+ exp); bytes: 4·(HeadDim·(2t+3) + 2(t+1)) per row.
/// </summary>
public static class AttentionKernel
{
    /// <param name="index">(r, head, query row) over R·Heads·(Qb − Qa).</param>
    /// <param name="q">[R·Kb, QueryWidth] recomputed queries.</param>
    /// <param name="k">[R·Kb, KvWidth] recomputed keys.</param>
    /// <param name="v">[R·Kb, KvWidth] recomputed values.</param>
    /// <param name="prefixK">Cached keys [batch·T, KvWidth] for positions below P.</param>
    /// <param name="prefixV">Cached values.</param>
    /// <param name="examples">[R] example of each sequence in the cached run.</param>
    /// <param name="probs">Probabilities: [batch, H, T, T] when kept, else scratch [R·H·(Qb−Qa), T].</param>
    /// <param name="z">[R·(Qb−Qa), QueryWidth] output.</param>
    /// <param name="s">Shape.</param>
    public static void Run(Index1D index, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> prefixK,
        ArrayView<float> prefixV, ArrayView<int> examples, ArrayView<float> probs, ArrayView<float> z, AttentionShape s)
    {
        int nq = s.Qb - s.Qa;
        int i = s.Qa + index % nq, rh = index / nq, h = rh % s.Heads, r = rh / s.Heads;
        int kvh = h / s.Group, e = examples[r], t = s.P + i, n = t + 1;
        int qBase = (r * s.Kb + i) * s.QueryWidth + h * s.HeadDim;
        int row = s.KeepProbabilities ? ((e * s.Heads + h) * s.T + t) * s.T : index * s.T;
        Softmax(q, qBase, k, prefixK, probs, row, n, r, e, kvh, s);
        int zBase = (r * nq + index % nq) * s.QueryWidth + h * s.HeadDim;
        for (int f = 0; f < s.HeadDim; f++)
        {
            float acc = 0;
            for (int j = 0; j < n; j++)
            {
                int vBase = KeyBase(j, r, e, kvh, s);
                acc += probs[row + j] * (j < s.P ? prefixV[vBase + f] : v[vBase + f]);
            }
            z[zBase + f] = acc;
        }
    }

    /// <summary>probs[row .. row + n) = softmax(q·k_j·scale) over keys j &lt; n (the row maximum subtracted). Shared with
    /// the QK fix's row recomputation so that an unchanged row is reproduced bit for bit.</summary>
    public static void Softmax(ArrayView<float> q, int qBase, ArrayView<float> k, ArrayView<float> prefixK, ArrayView<float> probs,
        int row, int n, int r, int e, int kvh, AttentionShape s)
    {
        float max = float.NegativeInfinity;
        for (int j = 0; j < n; j++)
        {
            int kBase = KeyBase(j, r, e, kvh, s);
            float dot = 0;
            for (int f = 0; f < s.HeadDim; f++) dot += q[qBase + f] * (j < s.P ? prefixK[kBase + f] : k[kBase + f]);
            float score = dot * s.Scale;
            probs[row + j] = score;
            max = score > max ? score : max;
        }
        float sum = 0;
        for (int j = 0; j < n; j++)
        {
            float p = MathF.Exp(probs[row + j] - max);
            probs[row + j] = p;
            sum += p;
        }
        for (int j = 0; j < n; j++) probs[row + j] /= sum;
    }

    /// <summary>Start of key/value j's head slice: in the cached run below P, in the recomputed rows from P.</summary>
    private static int KeyBase(int j, int r, int e, int kvh, AttentionShape s) =>
        (j < s.P ? e * s.T + j : r * s.Kb + j - s.P) * s.KvWidth + kvh * s.HeadDim;
}
