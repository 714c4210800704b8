using AtpFast.Cpu;

namespace AtpFast.Tests.Attribution;

/// <summary>
/// The QK fix's closed form for keys (spec §3, [derived]) equals the brute-force re-softmax — row t with only score s
/// moved by Δ_ts, Σ_s' (softmax(S')_s' − A_s')·g_s' — on random rows, including saturated ones (one score 30–700
/// above the rest) and large score changes, to 1e-6 absolute (g is O(1)).
/// </summary>
public sealed class QkFixClosedFormTests
{
    private static double BruteForce(double[] scores, double[] g, int s, double delta)
    {
        double[] changed = (double[])scores.Clone();
        changed[s] += delta;
        double[] a = Softmax(scores), b = Softmax(changed);
        double sum = 0;
        for (int i = 0; i < scores.Length; i++) sum += (b[i] - a[i]) * g[i];
        return sum;
    }

    private static double[] Softmax(double[] x)
    {
        double max = x.Max();
        double[] e = [.. x.Select(v => Math.Exp(v - max))];
        double total = e.Sum();
        return [.. e.Select(v => v / total)];
    }

    public static TheoryData<string> Regimes() => ["flat", "saturated", "extreme", "large-deltas", "single-key"];

    [Theory]
    [MemberData(nameof(Regimes))]
    public void Closed_form_equals_brute_force_re_softmax(string regime)
    {
        var rng = new Random(regime.Length * 17);
        double worst = 0;
        for (int trial = 0; trial < 400; trial++)
        {
            int n = regime == "single-key" ? 1 : 1 + rng.Next(24);
            var scores = new double[n];
            var delta = new double[n];
            var g = new double[n];
            for (int i = 0; i < n; i++)
            {
                scores[i] = 3 * TinyModels.Normal(rng);
                delta[i] = (regime == "large-deltas" ? 40 : 2) * TinyModels.Normal(rng);
                g[i] = 2 * rng.NextDouble() - 1;
            }
            if (regime is "saturated" or "extreme" && n > 1)
            {
                // One key dominates the row by 30 (1 − a ≈ 1e-13) up to 700 (1 − a far below double epsilon), and the
                // change of its score is large and negative: the regime where the formula as written cancels.
                int top = rng.Next(n);
                scores[top] += regime == "saturated" ? 30 + 10 * rng.NextDouble() : 200 + 500 * rng.NextDouble();
                delta[top] = -(regime == "saturated" ? 20 + 40 * rng.NextDouble() : 100 + 800 * rng.NextDouble());
            }
            var effects = new double[n];
            QkFix.AddRowKeyEffects(scores, delta, g, effects);
            for (int s = 0; s < n; s++)
            {
                double expected = BruteForce(scores, g, s, delta[s]);
                double error = Math.Abs(effects[s] - expected);
                worst = Math.Max(worst, error);
                Assert.True(error <= 1e-6, $"{regime} trial {trial}, key {s} of {n}: closed form {effects[s]:R}, brute force {expected:R}");
            }
        }
        Assert.True(worst < 1e-6);
    }

    [Fact]
    public void Closed_form_of_a_saturated_row_keeps_digits_the_formula_as_written_loses()
    {
        // A = 1 − 2e-14 on key 0; moving key 0 down by 30 spreads the mass over the other keys. The formula
        // a(e^Δ−1)(g − G)/(1 + a(e^Δ−1)) evaluated directly divides two cancelled differences.
        double[] scores = [32, 0.5, 0, -0.3];
        double[] g = [0.7, -0.2, 0.4, 0.1];
        double[] delta = [-30, 0, 0, 0];
        var effects = new double[4];
        QkFix.AddRowKeyEffects(scores, delta, g, effects);
        double expected = BruteForce(scores, g, 0, -30);
        Assert.True(Math.Abs(effects[0] - expected) <= 1e-12 * Math.Max(1, Math.Abs(expected)), $"{effects[0]:R} vs {expected:R}");

        var a = Softmax(scores);
        double bigG = a.Zip(g, (x, y) => x * y).Sum();
        double change = a[0] * (Math.Exp(-30) - 1);
        double naive = change * (g[0] - bigG) / (1 + change);
        Assert.True(Math.Abs(naive - expected) > 1e-6, "the direct formula was expected to lose accuracy here");
    }
}
