using AtpFast.Attribution;

namespace AtpFast.Tests.Attribution;

/// <summary>Student's t and the bound's closed form against brute force: published quantiles, numerical
/// integration of the density, and bisection of p(θ) ≤ α.</summary>
public sealed class StatisticsTests
{
    [Theory]
    [InlineData(0.95, 10, 1.8124611228116759)]
    [InlineData(0.975, 5, 2.5705818356363148)]
    [InlineData(0.99, 1, 31.82051595377393)]
    [InlineData(0.9, 30, 1.3104150253913957)]
    [InlineData(0.95, 2.5, 2.5582186141359355)]
    [InlineData(0.95, 1e4, 1.6450060180692425)]
    public void Quantiles_match_a_40_digit_reference(double p, double nu, double expected)
    {
        // Expected values: mpmath at 40 digits (root of 1 − I_x(ν/2, 1/2)/2 = p). SciPy 1.10's t.ppf is off by up to
        // 2e-9 at some of these points, so it is not the reference. Welch degrees of freedom stay far below 1e6, where
        // the log-gamma differences of the incomplete beta start to lose digits.
        Assert.Equal(expected, StudentT.Quantile(p, nu), 1e-9 * expected);
        Assert.Equal(p, StudentT.Cdf(expected, nu), 1e-10);
        Assert.Equal(-expected, StudentT.Quantile(1 - p, nu), 1e-9 * expected);
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(3.7)]
    [InlineData(12.0)]
    [InlineData(80.0)]
    public void Cdf_equals_numerical_integration_of_the_density(double nu)
    {
        double logNorm = StudentT.LogGamma((nu + 1) / 2) - StudentT.LogGamma(nu / 2) - 0.5 * Math.Log(nu * Math.PI);
        double Density(double t) => Math.Exp(logNorm - (nu + 1) / 2 * Math.Log(1 + t * t / nu));
        foreach (double t in new[] { -3.0, -0.7, 0.0, 0.4, 1.9, 5.0 })
        {
            // P(T ≤ t) = 1/2 + ∫_0^t density (Simpson, 20000 panels).
            int n = 20000;
            double h = t / n, sum = Density(0) + Density(t);
            for (int i = 1; i < n; i++) sum += (i % 2 == 1 ? 4 : 2) * Density(i * h);
            double expected = 0.5 + sum * h / 3;
            Assert.Equal(expected, StudentT.Cdf(t, nu), 1e-10);
        }
    }

    [Fact]
    public void Theta_star_is_the_smallest_threshold_whose_intersection_union_p_value_is_at_most_alpha()
    {
        var rng = new Random(5);
        int universe = 30, draws = 60;
        var members = new List<int[]>();
        var effects = new List<double>();
        for (int d = 0; d < draws; d++)
        {
            var set = Enumerable.Range(0, universe).Where(_ => rng.NextDouble() < 0.3).ToArray();
            members.Add(set);
            effects.Add(set.Sum(i => 0.05 * i) + TinyModels.Normal(rng));
        }
        var stats = Subsampling.Summarise(universe, members, effects);
        const double Alpha = 0.05;
        double closed = FalseNegativeBound.NodeThresholds(stats, Alpha).Max();
        double lo = 0, hi = 100;
        for (int i = 0; i < 200; i++)
        {
            double mid = (lo + hi) / 2;
            if (FalseNegativeBound.PValue(stats, mid) <= Alpha) hi = mid; else lo = mid;
        }
        Assert.Equal(hi, closed, 1e-9 * closed);
        Assert.True(FalseNegativeBound.PValue(stats, closed * (1 + 1e-9)) <= Alpha);
        Assert.True(FalseNegativeBound.PValue(stats, closed * (1 - 1e-6)) > Alpha);
    }

    [Fact]
    public void Subsampling_statistics_equal_a_direct_computation()
    {
        var rng = new Random(8);
        var members = Enumerable.Range(0, 25).Select(_ => Enumerable.Range(0, 10).Where(_ => rng.NextDouble() < 0.4).ToArray()).ToList();
        var effects = members.Select(_ => rng.NextDouble()).ToList();
        var stats = Subsampling.Summarise(10, members, effects);
        for (int n = 0; n < 10; n++)
        {
            var with = effects.Where((_, d) => members[d].Contains(n)).ToArray();
            var without = effects.Where((_, d) => !members[d].Contains(n)).ToArray();
            Assert.Equal(with.Length, stats.CountWith[n]);
            Assert.Equal(with.Average(), stats.MeanWith[n], 1e-12);
            Assert.Equal(with.Sum(x => (x - with.Average()) * (x - with.Average())) / (with.Length - 1), stats.VarianceWith[n], 1e-12);
            Assert.Equal(without.Average(), stats.MeanWithout[n], 1e-12);
            Assert.Equal(without.Sum(x => (x - without.Average()) * (x - without.Average())) / (without.Length - 1), stats.VarianceWithout[n], 1e-12);
        }
    }

    [Fact]
    public void Cost_of_verified_recall_equals_simulated_verification()
    {
        var rng = new Random(2);
        for (int trial = 0; trial < 50; trial++)
        {
            int n = 1 + rng.Next(40);
            var ids = Enumerable.Range(0, n).Select(i => i * 3).ToArray();
            var truth = new double[3 * n];
            var method = new double[3 * n];
            var verify = new double[3 * n];
            foreach (int id in ids)
            {
                truth[id] = rng.Next(5) == 0 ? 0 : rng.NextDouble();
                method[id] = truth[id] + 0.3 * rng.NextDouble();
                verify[id] = rng.NextDouble();
            }
            var truthRank = VerifiedRecall.Rank(ids, truth);
            var methodRank = VerifiedRecall.Rank(ids, method);
            var curve = VerifiedRecall.Curve(truthRank, methodRank, verify, 2.5, n);
            for (int k = 1; k <= n; k++)
            {
                // Verify in the method's order until every true top-k node has been verified.
                var needed = truthRank.Take(k).ToHashSet();
                double cost = 2.5;
                foreach (int id in methodRank)
                {
                    if (needed.Count == 0) break;
                    cost += verify[id];
                    needed.Remove(id);
                }
                Assert.Equal(cost, curve[k - 1], 1e-12);
            }
            Assert.Equal(1.0, VerifiedRecall.RecallAtK(truthRank, truthRank, Math.Min(5, n)));
        }
    }
}
