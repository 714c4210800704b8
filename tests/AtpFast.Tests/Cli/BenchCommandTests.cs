using System.Text.Json;
using System.Text.Json.Nodes;
using AtpFast.Cli;

namespace AtpFast.Tests.Cli;

/// <summary><c>atpfast bench</c>: times the CPU GEMM kernels and the backend's passes with GFLOP/s, saves a baseline,
/// and against a baseline exits 3 when an item slowed down beyond --max-slowdown, 0 otherwise.</summary>
public sealed class BenchCommandTests
{
    [Fact]
    public void Save_then_compare_passes_and_a_much_faster_baseline_is_a_regression()
    {
        using var dir = new TempFolder("bench");
        string baseline = dir["baseline.json"];
        Atpfast.Ok("bench", "--quick", "--repeats", "3", "--save", baseline);
        var saved = JsonNode.Parse(File.ReadAllText(baseline))!;
        Assert.Equal("atpfast-bench/1", saved["format"]!.GetValue<string>());
        var items = saved["items"]!.AsArray();
        var names = items.Select(i => i!["name"]!.GetValue<string>()).ToList();
        Assert.Contains(names, n => n.StartsWith("gemm ", StringComparison.Ordinal));
        foreach (string pass in new[] { "forward", "backward", "graddrop pass", "attribution products", "exact patching" })
            Assert.Contains(names, n => n.StartsWith(pass, StringComparison.Ordinal));
        Assert.All(items, i =>
        {
            Assert.True(i!["median_s"]!.GetValue<double>() > 0);
            Assert.True(i["flops"]!.GetValue<double>() > 0);
            Assert.Equal(3, i["seconds"]!.AsArray().Count);
        });

        // Against itself (with room for this machine's noise): no regression.
        Assert.Equal(ExitCodes.Ok, Atpfast.Run("bench", "--quick", "--repeats", "3", "--compare", baseline, "--max-slowdown", "1000%").Exit);

        // A baseline 100× faster with no spread: every item regressed.
        foreach (var item in items)
        {
            double median = item!["median_s"]!.GetValue<double>();
            item["seconds"] = new JsonArray(median / 100, median / 100, median / 100);
        }
        string fast = dir["fast.json"];
        File.WriteAllText(fast, saved.ToJsonString());
        Assert.Equal(ExitCodes.PerformanceRegression, Atpfast.Run("bench", "--quick", "--repeats", "3", "--compare", fast, "--max-slowdown", "200%").Exit);
    }

    [Fact]
    public void A_missing_or_foreign_baseline_is_bad_input()
    {
        using var dir = new TempFolder("bench-bad");
        var (exit, error) = Atpfast.Run("bench", "--quick", "--compare", dir["none.json"]);
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains("--compare", error, StringComparison.Ordinal);
        File.WriteAllText(dir["other.json"], JsonSerializer.Serialize(new { format = "something else" }));
        (exit, error) = Atpfast.Run("bench", "--quick", "--compare", dir["other.json"]);
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains("not a baseline", error, StringComparison.Ordinal);
    }
}
