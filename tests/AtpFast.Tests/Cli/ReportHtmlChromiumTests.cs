using System.Text.RegularExpressions;
using AtpFast.Tests.Integration;

namespace AtpFast.Tests.Cli;

/// <summary>report.html is one self-contained page that a browser renders: headless Chromium (Debian <c>chromium</c>)
/// loads it from disk with the network off, runs its script, and the rendered DOM holds a layer × head heatmap per head
/// type with layers × heads cells, layer × position heatmaps with layers × tokens cells and the ranked table with its
/// rows. The screenshot is written to tests/AtpFast.Tests/TestResults/report-screenshot.png and attached to the test.</summary>
public sealed partial class ReportHtmlChromiumTests
{
    [Fact]
    public void Chromium_renders_the_heatmaps_and_the_ranked_table()
    {
        string? chromium = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists);
        if (chromium is null)
            Assert.Skip("headless Chromium is not installed (Debian package 'chromium'; .ci/run installs it)");
        using var dir = new TempFolder("report");
        // The embedded IOI model (4 layers, 4 heads, 512 neurons, 14 tokens), 32 pairs, the top 25 verified.
        Atpfast.Ok("run", "--out", dir["out"], "--verify-top", "25");
        string report = dir["out/report.html"];
        string html = File.ReadAllText(report);
        Assert.DoesNotMatch(@"(src|href)\s*=\s*""(https?:)?//", html); // nothing loaded from the network

        string profile = dir["chromium-profile"];
        string[] common = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--user-data-dir=" + profile];
        string dom = RunChromium(chromium!, [.. common, "--dump-dom", "file://" + report]);
        Assert.Contains("data-ready=\"1\"", dom, StringComparison.Ordinal); // the script ran to its end without an error

        const int Layers = 4, Heads = 4, Tokens = 14;
        foreach (string type in new[] { "q", "k", "v", "z" })
        {
            Assert.Equal(Layers * Heads, CellsOf(dom, $"hm-{type}-head"));
            Assert.Equal(Layers * Tokens, CellsOf(dom, $"hm-{type}-pos"));
        }
        Assert.Equal(Layers * Tokens, CellsOf(dom, "hm-neuron-pos"));
        Assert.Equal(Layers * Tokens, CellsOf(dom, "hm-resid_pre-pos"));
        var table = Regex.Match(dom, "<table id=\"top-table\">.*?<tbody>(.*?)</tbody>", RegexOptions.Singleline);
        Assert.True(table.Success, "the ranked table is missing");
        Assert.Equal(25, Regex.Count(table.Groups[1].Value, "<tr>"));
        Assert.DoesNotContain("not verified", table.Groups[1].Value, StringComparison.Ordinal); // every shown row was verified
        Assert.Contains("id=\"cost-curve\"", dom, StringComparison.Ordinal);
        Assert.Contains("θ* =", dom, StringComparison.Ordinal);

        string results = Path.Combine(ModelPaths.RepoRoot, "tests", "AtpFast.Tests", "TestResults");
        Directory.CreateDirectory(results);
        string screenshot = Path.Combine(results, "report-screenshot.png");
        if (File.Exists(screenshot)) File.Delete(screenshot);
        RunChromium(chromium!, [.. common, "--window-size=1300,4200", "--screenshot=" + screenshot, "file://" + report]);
        Assert.True(File.Exists(screenshot), "no screenshot was written");
        byte[] png = File.ReadAllBytes(screenshot);
        Assert.Equal(0x89, png[0]);
        Assert.Equal(1300, (png[16] << 24) | (png[17] << 16) | (png[18] << 8) | png[19]); // IHDR width
        Assert.True(png.Length > 100_000, $"the screenshot is suspiciously small ({png.Length} bytes): a blank page?");
        TestContext.Current.AddAttachment("report-screenshot.png", png, "image/png");
        TestContext.Current.SendDiagnosticMessage($"screenshot: {screenshot}");
    }

    private static int CellsOf(string dom, string svgId)
    {
        var svg = Regex.Match(dom, $"<svg id=\"{Regex.Escape(svgId)}\".*?</svg>", RegexOptions.Singleline);
        Assert.True(svg.Success, $"heatmap {svgId} is missing");
        return CellPattern().Count(svg.Value);
    }

    [GeneratedRegex("<rect class=\"cell\"")]
    private static partial Regex CellPattern();

    private static string RunChromium(string chromium, string[] args)
    {
        var run = TestProcess.Run(chromium, args, workingDirectory: null, TimeSpan.FromSeconds(120));
        Assert.True(run.ExitCode == 0, $"chromium exited {run.ExitCode}: {run.Stderr}");
        return run.Stdout;
    }
}
