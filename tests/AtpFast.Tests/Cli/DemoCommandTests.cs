using System.Text.Json;
using AtpFast.Cli;

namespace AtpFast.Tests.Cli;

/// <summary>README's first command: <c>atpfast demo</c> runs AtP* on the embedded model, verifies the top 20 and writes
/// the tidy table, the summary and report.html.</summary>
public sealed class DemoCommandTests
{
    [Fact]
    public void Demo_writes_the_ranked_table_with_verified_top_nodes_and_a_summary()
    {
        string dir = Path.Combine(Path.GetTempPath(), "atpfast-demo-test-" + Guid.NewGuid().ToString("N"));
        try
        {
            int exit = DemoCommand.Create().Parse(["--out", dir]).Invoke();
            Assert.Equal(0, exit);
            var rows = File.ReadAllLines(Path.Combine(dir, "results.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            Assert.Equal(29_624, rows.Count); // q, k, v, z, neurons, resid_pre of the 4-layer model at 14 positions
            Assert.Equal(Enumerable.Range(1, rows.Count), rows.Select(r => r.GetProperty("rank").GetInt32()));
            Assert.All(rows, r => Assert.Equal("atp*", r.GetProperty("method").GetString()));
            Assert.Equal(20, rows.Count(r => r.GetProperty("verified_effect").ValueKind == JsonValueKind.Number));
            var estimates = rows.Select(r => r.GetProperty("estimate").GetDouble()).ToList();
            Assert.True(estimates.Zip(estimates.Skip(1), (a, b) => a >= b).All(x => x), "rows are not sorted by estimate");
            Assert.Equal(rows.Count + 1, File.ReadAllLines(Path.Combine(dir, "results.csv")).Length);
            var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json"))).RootElement;
            var cost = summary.GetProperty("cost_forward_equivalents_per_pair");
            Assert.InRange(cost.GetProperty("method").GetDouble(), 3, 3 + 4);
            Assert.True(cost.GetProperty("brute_force").GetDouble() > 100 * cost.GetProperty("method").GetDouble());
            Assert.Equal(32, summary.GetProperty("pairs").GetInt32());
            Assert.True(summary.GetProperty("bound").GetProperty("theta").GetDouble() > 0);
            string report = File.ReadAllText(Path.Combine(dir, "report.html"));
            Assert.Contains("<svg id=\"hm-z-head\"", report, StringComparison.Ordinal);
            Assert.Contains("id=\"top-table\"", report, StringComparison.Ordinal);
            Assert.Empty(Directory.GetFiles(dir, "*.tmp-*"));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
