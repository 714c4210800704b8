using AtpFast.Cli;

namespace AtpFast.Tests.Cli;

/// <summary>The performance-regression rule of <c>bench --compare</c>: the threshold applies to the ratio of medians; a
/// slowdown whose spread (interquartile range over the median, in either run) exceeds the threshold is "noisy", not a
/// regression; items in one run only are reported, not failed.</summary>
public sealed class BenchComparisonTests
{
    private static BenchMeasurement M(string name, params double[] seconds) => new(name, "kernel", "cpu", 1e9, seconds);

    [Fact]
    public void Medians_are_compared_and_noise_is_not_a_regression()
    {
        var old = new[]
        {
            M("same", 1.00, 1.00, 1.01, 0.99, 1.00), M("slower", 1.00, 1.00, 1.00, 1.00, 1.00), M("noisy", 0.6, 0.8, 1.0, 1.2, 1.4),
            M("faster", 1, 1, 1, 1, 1), M("gone", 1, 1, 1),
        };
        var current = new[]
        {
            M("same", 1.02, 1.03, 1.01, 1.02, 1.04), M("slower", 1.10, 1.10, 1.11, 1.09, 1.10), M("noisy", 1.2, 1.2, 1.2, 1.2, 1.2),
            M("faster", 0.5, 0.5, 0.5), M("added", 1, 1, 1),
        };
        var rows = BenchComparison.Compare(old, current, 0.05).ToDictionary(r => r.Name);
        Assert.Equal("ok", rows["same"].Status);
        Assert.Equal("REGRESSED", rows["slower"].Status);
        Assert.Equal(1.10, rows["slower"].Ratio!.Value, 1e-12);
        Assert.Equal("noisy", rows["noisy"].Status); // ratio 1.2, but the old spread (1.2 − 0.8)/1.0 = 40% > 5%
        Assert.Equal("faster", rows["faster"].Status);
        Assert.Equal("new", rows["added"].Status);
        Assert.Equal("missing", rows["gone"].Status);
        Assert.Equal(["slower"], rows.Values.Where(r => r.Regressed).Select(r => r.Name));
    }

    [Fact]
    public void Median_and_spread_use_interpolated_quartiles()
    {
        var m = M("x", 4, 1, 3, 2, 5);
        Assert.Equal(3, m.Median);
        Assert.Equal((4 - 2) / 3.0, m.Spread, 1e-12);
        Assert.Equal(1e9 / 3 / 1e9, m.Gflops, 1e-12);
    }

    [Theory]
    [InlineData("5%", 0.05)]
    [InlineData("0.05", 0.05)]
    [InlineData(" 12.5% ", 0.125)]
    public void Thresholds_parse_as_percentages_or_fractions(string text, double expected) =>
        Assert.Equal(expected, BenchCommand.ParseThreshold(text), 1e-15);

    [Theory]
    [InlineData("five")]
    [InlineData("-5%")]
    [InlineData("")]
    public void Bad_thresholds_name_the_flag(string text) =>
        Assert.Contains("--max-slowdown", Assert.Throws<AtpFastException>(() => BenchCommand.ParseThreshold(text)).Message, StringComparison.Ordinal);
}
