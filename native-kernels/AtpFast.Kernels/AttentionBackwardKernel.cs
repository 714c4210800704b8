using ILGPU;

namespace AtpFast.Kernels;

/// <summary>Shape of the attention backward: <paramref name="Batch"/> sequences of T tokens.</summary>
public readonly record struct AttentionBackwardShape(int Batch, int T, int Heads, int Group, int HeadDim, int QueryWidth, int KvWidth, float Scale);

/// <summary>
/// Softmax attention backward in two deterministic steps (no atomics). Rows: per (sequence, head, query t) the
/// probability gradients g_ts = dz_t·v_s (kept: the QK fix needs ∂L/∂A), dS_ts = A_ts·(g_ts − Σ_s' A_ts'·g_ts')·scale
/// (into scratch) and dq_t = Σ_s dS_ts·k_s. Keys: per (sequence, key/value head, key s) dk_s = Σ_heads Σ_{t≥s} dS_ts·q_t
/// and dv_s = Σ_heads Σ_{t≥s} A_ts·dz_t. FLOPs: 8·HeadDim per (t, s) pair and head; bytes ~ 4·HeadDim·6 per pair.
/// </summary>
public static class AttentionBackwardKernel
{
    /// <param name="index">(sequence, head, t).</param>
    /// <param name="q">[batch·T, QueryWidth] cached queries (after rotary).</param>
    /// <param name="k">[batch·T, KvWidth] cached keys.</param>
    /// <param name="v">[batch·T, KvWidth] cached values.</param>
    /// <param name="probs">[batch, H, T, T] cached probabilities.</param>
    /// <param name="dz">[batch·T, QueryWidth] ∂L/∂z.</param>
    /// <param name="dProbs">[batch, H, T, T] output ∂L/∂A.</param>
    /// <param name="dScores">[batch, H, T, T] output ∂L/∂S (scaled), read by <see cref="Keys"/>.</param>
    /// <param name="dq">[batch·T, QueryWidth] output ∂L/∂q.</param>
    /// <param name="s">Shape.</param>
    public static void Rows(Index1D index, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> probs,
        ArrayView<float> dz, ArrayView<float> dProbs, ArrayView<float> dScores, ArrayView<float> dq, AttentionBackwardShape s)
    {
        int t = index % s.T, bh = index / s.T, h = bh % s.Heads, b = bh / s.Heads, kvh = h / s.Group;
        int row = (bh * s.T + t) * s.T, zBase = (b * s.T + t) * s.QueryWidth + h * s.HeadDim;
        float rowDot = 0;
        for (int j = 0; j <= t; j++)
        {
            int vBase = (b * s.T + j) * s.KvWidth + kvh * s.HeadDim;
            float g = 0;
            for (int f = 0; f < s.HeadDim; f++) g += dz[zBase + f] * v[vBase + f];
            dProbs[row + j] = g;
            rowDot += probs[row + j] * g;
        }
        for (int j = 0; j <= t; j++) dScores[row + j] = probs[row + j] * (dProbs[row + j] - rowDot) * s.Scale;
        for (int f = 0; f < s.HeadDim; f++)
        {
            float acc = 0;
            for (int j = 0; j <= t; j++) acc += dScores[row + j] * k[(b * s.T + j) * s.KvWidth + kvh * s.HeadDim + f];
            dq[zBase + f] = acc;
        }
    }

    /// <param name="index">(sequence, key/value head, key s).</param>
    /// <param name="q">[batch·T, QueryWidth] cached queries.</param>
    /// <param name="probs">[batch, H, T, T] cached probabilities.</param>
    /// <param name="dz">[batch·T, QueryWidth] ∂L/∂z.</param>
    /// <param name="dScores">[batch, H, T, T] from <see cref="Rows"/>.</param>
    /// <param name="dk">[batch·T, KvWidth] output ∂L/∂k.</param>
    /// <param name="dv">[batch·T, KvWidth] output ∂L/∂v.</param>
    /// <param name="s">Shape.</param>
    public static void Keys(Index1D index, ArrayView<float> q, ArrayView<float> probs, ArrayView<float> dz, ArrayView<float> dScores,
        ArrayView<float> dk, ArrayView<float> dv, AttentionBackwardShape s)
    {
        int kvHeads = s.Heads / s.Group;
        int j = index % s.T, bk = index / s.T, kvh = bk % kvHeads, b = bk / kvHeads;
        int outBase = (b * s.T + j) * s.KvWidth + kvh * s.HeadDim;
        for (int f = 0; f < s.HeadDim; f++)
        {
            float gk = 0, gv = 0;
            for (int h = kvh * s.Group; h < (kvh + 1) * s.Group; h++)
            {
                for (int t = j; t < s.T; t++)
                {
                    int at = ((b * s.Heads + h) * s.T + t) * s.T + j, qBase = (b * s.T + t) * s.QueryWidth + h * s.HeadDim;
                    gk += dScores[at] * q[qBase + f];
                    gv += probs[at] * dz[qBase + f];
                }
            }
            dk[outBase + f] = gk;
            dv[outBase + f] = gv;
        }
    }
}
