using System.Globalization;

namespace AtpFast.Attribution;

/// <summary>
/// The subsampling bound on remaining false negatives (spec §5): after the top K nodes of a ranking are verified,
/// random subsets of the rest R are patched jointly; for each n ∈ R a one-sided Welch t-test of H0: |I(n)| ≥ θ
/// against H1: |I(n)| &lt; θ has t = (θ − |ī+ − ī−|)/√(s+²/m+ + s−²/m−) with Welch–Satterthwaite degrees of freedom;
/// p(θ) = max_n p_n (intersection–union test). Because each p_n falls as θ grows, θ* = min{θ : p(θ) ≤ α} is, in
/// closed form, θ* = max_n (|ī+ − ī−| + t_{1−α, ν_n}·se_n): "with confidence 1 − α no unverified node has
/// |effect| ≥ θ*". A node drawn fewer than twice with or without it cannot be bounded (θ* = ∞ then).
/// </summary>
public sealed record FalseNegativeBound(
    double Theta,
    double Alpha,
    int Verified,
    int Remaining,
    int Draws,
    double InclusionProbability,
    string? LimitingNode,
    int Unbounded,
    double CostForwardEquivalents)
{
    /// <summary>The sentence the tools print.</summary>
    public string Describe() => double.IsPositiveInfinity(Theta)
        ? string.Create(CultureInfo.InvariantCulture,
            $"no bound: {Unbounded} of the {Remaining} unverified nodes were drawn fewer than twice with or without them in {Draws} subsets (p = {InclusionProbability:G3}); draw more subsets")
        : string.Create(CultureInfo.InvariantCulture,
            $"with confidence {100 * (1 - Alpha):G4}%, no unverified node has |effect| ≥ θ* = {Theta:G4} ({Verified} verified, {Remaining} bounded by {Draws} random subsets, p = {InclusionProbability:G3}; limiting node {LimitingNode})");

    /// <summary>θ_n per node from subsampling statistics: |ī+ − ī−| + t_{1−α,ν}·se (∞ when not estimable).</summary>
    internal static double[] NodeThresholds(Subsampling.Statistics stats, double alpha)
    {
        var theta = new double[stats.CountWith.Length];
        for (int n = 0; n < theta.Length; n++)
        {
            var (diff, se, df) = Welch(stats, n);
            theta[n] = double.IsNaN(diff) || double.IsNaN(se) ? double.PositiveInfinity
                : se == 0 ? diff
                : diff + StudentT.Quantile(1 - alpha, df) * se;
        }
        return theta;
    }

    /// <summary>|ī+ − ī−|, its standard error and the Welch–Satterthwaite degrees of freedom of node n.</summary>
    internal static (double AbsDiff, double StandardError, double DegreesOfFreedom) Welch(Subsampling.Statistics stats, int n)
    {
        int m1 = stats.CountWith[n], m2 = stats.CountWithout[n];
        if (m1 < 2 || m2 < 2) return (double.NaN, double.NaN, double.NaN);
        double a = stats.VarianceWith[n] / m1, b = stats.VarianceWithout[n] / m2;
        double se = Math.Sqrt(a + b);
        double df = a + b == 0 ? m1 + m2 - 2 : (a + b) * (a + b) / (a * a / (m1 - 1) + b * b / (m2 - 1));
        return (Math.Abs(stats.MeanWith[n] - stats.MeanWithout[n]), se, df);
    }

    /// <summary>p(θ) = max over nodes of the one-sided Welch p-value at θ (for checking the inversion).</summary>
    internal static double PValue(Subsampling.Statistics stats, double theta)
    {
        double worst = 0;
        for (int n = 0; n < stats.CountWith.Length; n++)
        {
            var (diff, se, df) = Welch(stats, n);
            if (double.IsNaN(diff) || double.IsNaN(se)) return 1;
            double p = se == 0 ? (theta > diff ? 0 : 1) : 1 - StudentT.Cdf((theta - diff) / se, df);
            worst = Math.Max(worst, p);
        }
        return worst;
    }

    /// <summary>Runs the bound for a ranking: verifies nothing itself (the caller verified the first
    /// <paramref name="verified"/> of <paramref name="ranking"/>), draws subsets of the rest.</summary>
    internal static FalseNegativeBound Compute(AttributionSession session, int[] ranking, int verified, CostMeter meter, ProgressReporter progress)
    {
        var options = session.Options;
        double alpha = options.BoundAlpha ?? throw new InvalidOperationException("no alpha");
        if (!(alpha > 0 && alpha < 1)) throw new ArgumentOutOfRangeException(nameof(session), "the bound's alpha must be in (0, 1)");
        var rest = ranking.Skip(verified).ToArray();
        if (rest.Length == 0) return new FalseNegativeBound(0, alpha, verified, 0, 0, options.InclusionProbability, null, 0, 0);
        double before = meter.Total;
        var stats = Subsampling.Draw(session, rest, options.BoundDraws, options.InclusionProbability, double.PositiveInfinity,
            new Random(options.Seed + 1), meter, progress, "false-negative bound");
        var theta = NodeThresholds(stats, alpha);
        int limiting = 0;
        for (int n = 1; n < theta.Length; n++)
        {
            if (theta[n] > theta[limiting]) limiting = n;
        }
        int unbounded = theta.Count(double.IsPositiveInfinity);
        return new FalseNegativeBound(theta[limiting], alpha, verified, rest.Length, options.BoundDraws,
            options.InclusionProbability, session.Space[rest[limiting]].Name, unbounded, (meter.Total - before) / session.PairCount);
    }
}

/// <summary>Student's t distribution: CDF through the regularised incomplete beta function (continued fraction)
/// and its quantile by bisection.</summary>
public static class StudentT
{
    /// <summary>P(T ≤ t) for ν degrees of freedom.</summary>
    public static double Cdf(double t, double nu)
    {
        if (double.IsNaN(t) || !(nu > 0)) return double.NaN;
        if (double.IsPositiveInfinity(t)) return 1;
        if (double.IsNegativeInfinity(t)) return 0;
        double tail = 0.5 * RegularizedBeta(nu / (nu + t * t), nu / 2, 0.5);
        return t > 0 ? 1 - tail : tail;
    }

    /// <summary>The t with P(T ≤ t) = <paramref name="p"/> for ν degrees of freedom, to ~1e-12 relative.</summary>
    public static double Quantile(double p, double nu)
    {
        if (!(p > 0 && p < 1) || !(nu > 0)) return double.NaN;
        if (p < 0.5) return -Quantile(1 - p, nu);
        if (p == 0.5) return 0;
        double lo = 0, hi = 1;
        while (Cdf(hi, nu) < p) hi *= 2;
        for (int i = 0; i < 200 && hi - lo > 1e-13 * hi; i++)
        {
            double mid = 0.5 * (lo + hi);
            if (Cdf(mid, nu) < p) lo = mid; else hi = mid;
        }
        return 0.5 * (lo + hi);
    }

    /// <summary>I_x(a, b), the regularised incomplete beta function (Lentz's continued fraction).</summary>
    public static double RegularizedBeta(double x, double a, double b)
    {
        if (x <= 0) return 0;
        if (x >= 1) return 1;
        double front = Math.Exp(LogGamma(a + b) - LogGamma(a) - LogGamma(b) + a * Math.Log(x) + b * Math.Log(1 - x));
        // The continued fraction converges quickly for x < (a + 1)/(a + b + 2); use the symmetry otherwise.
        return x < (a + 1) / (a + b + 2)
            ? front * BetaFraction(x, a, b) / a
            : 1 - front * BetaFraction(1 - x, b, a) / b;
    }

    private static double BetaFraction(double x, double a, double b)
    {
        const double Tiny = 1e-300;
        double c = 1, d = 1 - (a + b) * x / (a + 1);
        d = 1 / (Math.Abs(d) < Tiny ? Tiny : d);
        double h = d;
        for (int m = 1; m <= 1000; m++)
        {
            double numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
            d = 1 + numerator * d; d = 1 / (Math.Abs(d) < Tiny ? Tiny : d);
            c = 1 + numerator / c; c = Math.Abs(c) < Tiny ? Tiny : c;
            h *= d * c;
            numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
            d = 1 + numerator * d; d = 1 / (Math.Abs(d) < Tiny ? Tiny : d);
            c = 1 + numerator / c; c = Math.Abs(c) < Tiny ? Tiny : c;
            double step = d * c;
            h *= step;
            if (Math.Abs(step - 1) < 1e-15) break;
        }
        return h;
    }

    /// <summary>log Γ(x) for x &gt; 0 (Lanczos, g = 7, 9 terms; ~1e-15 relative).</summary>
    public static double LogGamma(double x)
    {
        if (x < 0.5) return Math.Log(Math.PI / Math.Abs(Math.Sin(Math.PI * x))) - LogGamma(1 - x);
        ReadOnlySpan<double> g =
        [
            0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
            12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
        ];
        x -= 1;
        double sum = g[0];
        for (int i = 1; i < g.Length; i++) sum += g[i] / (x + i);
        double t = x + 7.5;
        return 0.5 * Math.Log(2 * Math.PI) + (x + 0.5) * Math.Log(t) - t + Math.Log(sum);
    }
}
