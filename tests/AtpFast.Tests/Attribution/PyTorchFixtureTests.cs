using System.Text.Json;
using AtpFast.Attribution;
using AtpFast.Cpu;
using AtpFast.Onnx;
using AtpFast.Tasks;
using AtpFast.Tests.Integration;

namespace AtpFast.Tests.Attribution;

/// <summary>
/// Exact patching effects and AtP, AtP+QK, AtP+GradDrop and AtP* estimates for q/k/v/z, neurons and resid_pre (every
/// position and @*) in both directions equal an independent PyTorch implementation (tools/atp_reference.py: its own
/// modules and hooks, float64, brute-force QK re-softmax) on the embedded IOI model, the GPT-NeoX test model and
/// stories260K, to 1e-4 relative or 1e-5 absolute.
/// </summary>
public abstract class PyTorchFixtureTests(ITestOutputHelper output)
{
    private const double Relative = 1e-4, Absolute = 1e-5;

    protected abstract IBackend CreateBackend(ModelWeights weights);

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string model in new[] { "ioi-gpt2", "neox-tiny", "stories260K" })
        {
            data.Add(model, "noising");
            data.Add(model, "denoising");
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Logit_difference_effects_and_estimates_match_pytorch(string model, string direction)
    {
        var fixture = Fixture.Load(model);
        using var backend = CreateBackend(fixture.Weights);
        var results = fixture.Results.GetProperty("logit-diff").GetProperty(direction);
        foreach (var method in new[] { AttributionMethod.Exact, AttributionMethod.Atp, AttributionMethod.AtpQk, AttributionMethod.AtpGd, AttributionMethod.AtpStar })
        {
            var expected = results.GetProperty(method.Name());
            var (estimate, signed) = Scores(backend, fixture, fixture.Nodes, method, MetricKind.LogitDiff, MetricNames.ParseDirection(direction));
            Compare(fixture.Nodes, expected, estimate, signed, $"{model} {direction} {method.Name()}");
        }
    }

    [Theory]
    [InlineData("logprob")]
    [InlineData("prob")]
    [InlineData("kl")]
    [InlineData("norm-logit-diff")]
    public void Other_metrics_match_pytorch_on_the_ioi_model(string metricName)
    {
        var fixture = Fixture.Load("ioi-gpt2");
        using var backend = CreateBackend(fixture.Weights);
        var metric = MetricNames.ParseMetric(metricName);
        foreach (string direction in new[] { "noising", "denoising" })
        {
            var results = fixture.Results.GetProperty(metricName).GetProperty(direction);
            foreach (var method in new[] { AttributionMethod.Exact, AttributionMethod.Atp })
            {
                var parsedDirection = MetricNames.ParseDirection(direction);
                if (!AtpFast.Attribution.Attribution.IsMeaningful(method, metric, parsedDirection, out _))
                {
                    // The reference's numbers here are rounding noise (≈1e-16): the engine refuses to rank them.
                    double largest = results.GetProperty(method.Name()).GetProperty("estimate").EnumerateArray().Max(v => v.GetDouble());
                    Assert.True(largest < 1e-9, $"the reference's {metricName} {direction} {method.Name()} is not ~0 ({largest})");
                    continue;
                }
                var (estimate, signed) = Scores(backend, fixture, fixture.ExtraNodes, method, metric, parsedDirection);
                Compare(fixture.ExtraNodes, results.GetProperty(method.Name()), estimate, signed, $"ioi {metricName} {direction} {method.Name()}");
            }
        }
    }

    /// <summary>Exact patching of exactly the fixture's nodes (the fixture holds a subset of the neurons); the
    /// estimators through the public API over every node, then read at the fixture's nodes.</summary>
    private static (Dictionary<string, double> Estimate, Dictionary<string, double> Signed) Scores(IBackend backend, Fixture fixture,
        string[] names, AttributionMethod method, MetricKind metric, Direction direction)
    {
        var types = names.Select(n => Node.Parse(n).Type).Distinct().Aggregate(NodeTypes.None, (set, t) => set | (NodeTypes)(1 << (int)t));
        var options = new AttributionOptions { Method = method, Metric = metric, Direction = direction, Nodes = types, Positions = PositionMode.Both };
        var estimate = new Dictionary<string, double>();
        var signed = new Dictionary<string, double>();
        if (method == AttributionMethod.Exact)
        {
            using var session = new AttributionSession(backend, fixture.Pairs, options);
            var sets = names.Select(n => (ReadOnlyMemory<Node>)new[] { Node.Parse(n) }).ToList();
            var (effects, _) = ExactPatching.Effects(session, sets, new CostMeter(), new ProgressReporter(null), "exact");
            for (int i = 0; i < names.Length; i++)
            {
                estimate[names[i]] = Math.Abs(effects[i]);
                signed[names[i]] = effects[i];
            }
            return (estimate, signed);
        }
        var result = AtpFast.Attribution.Attribution.Run(backend, fixture.Pairs, options);
        foreach (var row in result.Rows)
        {
            estimate[row.Node.Name] = row.Estimate;
            signed[row.Node.Name] = row.SignedEstimate;
        }
        return (estimate, signed);
    }

    private void Compare(string[] names, JsonElement expected, Dictionary<string, double> estimate, Dictionary<string, double> signed, string label)
    {
        var failures = new List<string>();
        double worstAbs = 0, worstRel = 0;
        foreach (var (field, ours) in new[] { ("estimate", estimate), ("signed", signed) })
        {
            var values = expected.GetProperty(field).EnumerateArray().Select(v => v.GetDouble()).ToArray();
            Assert.Equal(names.Length, values.Length);
            for (int i = 0; i < names.Length; i++)
            {
                Assert.True(ours.TryGetValue(names[i], out double actual), $"{label}: no score for {names[i]}");
                double error = Math.Abs(actual - values[i]);
                double relative = error / Math.Max(Math.Abs(values[i]), 1e-300);
                worstAbs = Math.Max(worstAbs, error);
                if (error > Absolute) worstRel = Math.Max(worstRel, relative);
                if (error > Absolute && relative > Relative && failures.Count < 10)
                    failures.Add($"{names[i]} {field}: ours {actual:G9}, PyTorch {values[i]:G9} (abs {error:E2}, rel {relative:E2})");
            }
        }
        output.WriteLine($"{label}: {names.Length} nodes, worst abs error {worstAbs:E2}, worst rel error beyond 1e-5 abs {worstRel:E2}");
        Assert.True(failures.Count == 0, $"{label}:\n{string.Join("\n", failures)}");
    }

    private sealed record Fixture(ModelWeights Weights, IReadOnlyList<PromptPair> Pairs, string[] Nodes, string[] ExtraNodes, JsonElement Results)
    {
        private static readonly Dictionary<string, Fixture> Cache = [];

        public static Fixture Load(string model)
        {
            lock (Cache)
            {
                if (Cache.TryGetValue(model, out var cached)) return cached;
                string path = Path.Combine(ModelPaths.RepoRoot, "tests", "AtpFast.Tests", "Fixtures", "atp", model + ".json");
                var root = JsonDocument.Parse(File.ReadAllText(path)).RootElement;
                var weights = OnnxImporter.Load(Path.GetFullPath(Path.Combine(ModelPaths.RepoRoot, root.GetProperty("onnx").GetString()!))).Weights;
                var pairs = root.GetProperty("pairs").EnumerateArray().Select(p => new PromptPair(
                    [.. p.GetProperty("clean").EnumerateArray().Select(v => v.GetInt32())],
                    [.. p.GetProperty("noise").EnumerateArray().Select(v => v.GetInt32())],
                    p.GetProperty("answer").GetInt32(), p.GetProperty("wrong").GetInt32())).ToList();
                string[] Names(string field) => root.TryGetProperty(field, out var list) ? [.. list.EnumerateArray().Select(v => v.GetString()!)] : [];
                var fixture = new Fixture(weights, pairs, Names("nodes"), Names("nodes_extra"), root.GetProperty("results"));
                Cache[model] = fixture;
                return fixture;
            }
        }
    }
}

public sealed class CpuFp32PyTorchFixtureTests(ITestOutputHelper output) : PyTorchFixtureTests(output)
{
    protected override IBackend CreateBackend(ModelWeights weights) => new CpuBackend(weights, Precision.Float32);
}

public sealed class CpuFp64PyTorchFixtureTests(ITestOutputHelper output) : PyTorchFixtureTests(output)
{
    protected override IBackend CreateBackend(ModelWeights weights) => new CpuBackend(weights, Precision.Float64);
}
