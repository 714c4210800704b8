namespace AtpFast.Cpu;

/// <summary>
/// The closed form of the QK fix for keys (spec §3): for one query row t of one head, the exact change of
/// Σ_s' A_ts'·g_ts' when only the score of key s moves by Δ_ts, for every s at once in O(T):
/// <c>row_effect(t,s) = a(e^Δ − 1)(g_ts − G_t) / (1 + a(e^Δ − 1))</c> with a = A_ts and G_t = Σ_s' A_ts' g_ts'.
/// Computed in double from the row's scores so that saturated rows stay exact: with m the row maximum at s*,
/// r = Σ_{s≠s*} exp(S_s − m) and x_s = S_s − m − log1p(r) = log A_s, the terms 1 − a = −expm1(x), a·e^Δ = exp(x + Δ)
/// and g_s* − G = Σ_{s≠s*} A_s·(g_s* − g_s) are formed without cancelling large quantities, so a row whose weight
/// sits almost entirely on one key (1 − a far below machine epsilon) is handled as accurately as a flat one.
/// The part that does not depend on g (<see cref="PrepareRow"/>) is computed once per pair of runs; each backward
/// pass (GradDrop runs L + 1 of them) only applies it (<see cref="ApplyRow"/>).
/// </summary>
internal static class QkFix
{
    /// <summary>The g-independent part of one row: ratio[s] = a(e^Δ − 1)/(1 + a(e^Δ − 1)) and the row's
    /// probabilities recomputed accurately; returns s*, the index of the row maximum.</summary>
    /// <param name="scores">S_t[0..n): the row's scores q_t·k_s/√d (n = t + 1 keys).</param>
    /// <param name="delta">Δ[0..n): q_t·(k_s^source − k_s)/√d.</param>
    /// <param name="ratio">[n] output.</param>
    /// <param name="probabilities">[n] output A_ts.</param>
    public static int PrepareRow(ReadOnlySpan<double> scores, ReadOnlySpan<double> delta, Span<double> ratio, Span<double> probabilities)
    {
        int n = scores.Length, top = 0;
        for (int s = 1; s < n; s++)
        {
            if (scores[s] > scores[top]) top = s;
        }
        double m = scores[top], rest = 0;
        for (int s = 0; s < n; s++)
        {
            if (s != top) rest += Math.Exp(scores[s] - m);
        }
        double logNorm = Accurate.Log1P(rest); // log Σ_s exp(S_s − m)
        for (int s = 0; s < n; s++)
        {
            double x = scores[s] - m - logNorm, d = delta[s];
            double a = Math.Exp(x);
            double change = d < 1 ? a * Accurate.ExpM1(d) : Math.Exp(x + d) - a; // a(e^Δ − 1)
            ratio[s] = double.IsPositiveInfinity(change) ? 1.0 : change / (-Accurate.ExpM1(x) + Math.Exp(x + d));
            probabilities[s] = a;
        }
        return top;
    }

    /// <summary>Adds ratio[s]·(g_s − G) to <paramref name="effects"/>[s] for each key of one row, with g_s* − G formed
    /// as Σ_{s≠s*} A_s·(g_s* − g_s).</summary>
    public static void ApplyRow(ReadOnlySpan<double> ratio, ReadOnlySpan<double> probabilities, int top, ReadOnlySpan<double> g,
        Span<double> effects)
    {
        int n = ratio.Length;
        double gTop = g[top], topMinusMean = 0;
        for (int s = 0; s < n; s++)
        {
            if (s != top) topMinusMean += probabilities[s] * (gTop - g[s]);
        }
        for (int s = 0; s < n; s++)
            effects[s] += ratio[s] * (s == top ? topMinusMean : g[s] - gTop + topMinusMean);
    }

    /// <summary><see cref="PrepareRow"/> then <see cref="ApplyRow"/>: adds each key's exact effect on one row.</summary>
    public static void AddRowKeyEffects(ReadOnlySpan<double> scores, ReadOnlySpan<double> delta, ReadOnlySpan<double> g, Span<double> effects)
    {
        var ratio = new double[scores.Length];
        var probabilities = new double[scores.Length];
        int top = PrepareRow(scores, delta, ratio, probabilities);
        ApplyRow(ratio, probabilities, top, g, effects);
    }
}
