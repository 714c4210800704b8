namespace AtpFast.Cpu;

/// <summary>
/// The closed form of the QK fix for keys (spec §3): for one query row t of one head, the exact change of
/// Σ_s' A_ts'·g_ts' when only the score of key s moves by Δ_ts, for every s at once in O(T):
/// <c>row_effect(t,s) = a(e^Δ − 1)(g_ts − G_t) / (1 + a(e^Δ − 1))</c> with a = A_ts and G_t = Σ_s' A_ts' g_ts'.
/// Computed in double from the row's scores so that saturated rows stay exact: with m the row maximum at s*,
/// r = Σ_{s≠s*} exp(S_s − m) and x_s = S_s − m − log1p(r) = log A_s, the terms 1 − a = −expm1(x), a·e^Δ = exp(x + Δ)
/// and g_s* − G = Σ_{s≠s*} A_s·(g_s* − g_s) are formed without cancelling large quantities, so a row whose weight
/// sits almost entirely on one key (1 − a far below machine epsilon) is handled as accurately as a flat one.
/// </summary>
internal static class QkFix
{
    /// <summary>Adds to <paramref name="effects"/>[s] the exact effect on Σ_s' A'_s'·g_s' − Σ_s' A_s'·g_s' of
    /// changing score s alone by <paramref name="delta"/>[s], for each s of one causal attention row.</summary>
    /// <param name="scores">S_t[0..n): the row's scores q_t·k_s/√d (n = t + 1 keys).</param>
    /// <param name="delta">Δ[0..n): q_t·(k_s^source − k_s)/√d.</param>
    /// <param name="g">∂L/∂A_t[0..n).</param>
    /// <param name="effects">[≥ n] accumulators, one per key.</param>
    public static void AddRowKeyEffects(ReadOnlySpan<double> scores, ReadOnlySpan<double> delta, ReadOnlySpan<double> g, Span<double> effects)
    {
        int n = scores.Length;
        int top = 0;
        for (int s = 1; s < n; s++)
        {
            if (scores[s] > scores[top]) top = s;
        }
        double m = scores[top];
        double rest = 0;
        for (int s = 0; s < n; s++)
        {
            if (s != top) rest += Math.Exp(scores[s] - m);
        }
        double logNorm = Accurate.Log1P(rest); // log Σ_s exp(S_s − m)
        double gTop = g[top], topMinusMean = 0; // g_s* − G_t
        for (int s = 0; s < n; s++)
        {
            if (s != top) topMinusMean += Math.Exp(scores[s] - m - logNorm) * (gTop - g[s]);
        }
        for (int s = 0; s < n; s++)
        {
            double x = scores[s] - m - logNorm, d = delta[s];
            double a = Math.Exp(x);
            double change = d < 1 ? a * Accurate.ExpM1(d) : Math.Exp(x + d) - a; // a(e^Δ − 1)
            double ratio = double.IsPositiveInfinity(change) ? 1.0 : change / (-Accurate.ExpM1(x) + Math.Exp(x + d));
            double gMinusMean = s == top ? topMinusMean : g[s] - gTop + topMinusMean;
            effects[s] += ratio * gMinusMean;
        }
    }
}
