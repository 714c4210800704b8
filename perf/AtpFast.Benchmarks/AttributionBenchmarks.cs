using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using AtpFast.Attribution;
using AtpFast.Cpu;
using AtpFast.Onnx;
using AtpFast.Tasks;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace AtpFast.Benchmarks;

/// <summary>The models and prompt pairs the attribution benchmarks and their PyTorch peer share.</summary>
internal static class BenchModels
{
    public static readonly string[] Names = ["ioi-gpt2", "stories260K"];

    public static ImportedModel Load(string name) => OnnxImporter.Load(name == "ioi-gpt2" ? Peers.IoiModel
        : Path.Combine(Peers.RepoRoot, "..", "shared", "models", "stories260K", "model.onnx"));

    /// <summary>IOI: the 32 held-out pairs of 14 tokens. stories260K: 16 eight-token windows of the reference greedy
    /// continuation with one token replaced (the shapes tools/bench_torch_attribution.py uses).</summary>
    public static List<PromptPair> Pairs(string name, ImportedModel model)
    {
        if (name == "ioi-gpt2")
            return [.. DemoModel.TaskPairs(DemoModel.Tokenizer(), model.Config.VocabSize)];
        var reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(Peers.RepoRoot, "..", "shared", "models", "stories260K", "reference.json")));
        int[] greedy = [.. reference.RootElement.GetProperty("greedy_from_bos").EnumerateArray().Select(v => v.GetInt32())];
        var rng = new Random(0);
        return [.. Enumerable.Range(0, 16).Select(i =>
        {
            int[] clean = greedy.AsSpan(i % (greedy.Length - 7), 8).ToArray();
            int[] noise = (int[])clean.Clone();
            int pos = 1 + rng.Next(7);
            noise[pos] = 3 + (clean[pos] + 1 + rng.Next(model.Config.VocabSize - 5)) % (model.Config.VocabSize - 3);
            return new PromptPair(clean, noise, clean[(pos + 1) % 8], noise[pos]);
        })];
    }

    /// <summary>A sample of <paramref name="count"/> single nodes as the PyTorch peer draws it: an equal quota per node
    /// kind (capped at the kind's count), the rest uniformly from the remaining nodes.</summary>
    public static Node[] StratifiedSample(NodeSpace space, int count, int seed)
    {
        var rng = new Random(seed);
        var byKind = space.Select(NodeTypes.Default, PositionMode.PerPosition).GroupBy(id => space[id].Type).ToList();
        int quota = Math.Max(1, count / byKind.Count);
        var chosen = new HashSet<int>();
        foreach (var kind in byKind)
            foreach (int id in kind.OrderBy(_ => rng.Next()).Take(quota)) chosen.Add(id);
        var rest = byKind.SelectMany(k => k).Where(id => !chosen.Contains(id)).OrderBy(_ => rng.Next()).Take(count - chosen.Count);
        return [.. chosen.Concat(rest).Select(id => space[id]).OrderBy(_ => rng.Next())];
    }
}

/// <summary>AtP and AtP* over a distribution of pairs (every q/k/v/z, neuron and resid_pre node, per position and @*),
/// through the public API, all pairs in one batch.</summary>
public class AtpBenchmarks
{
    /// <summary>Forward-equivalents per pair of each (model, method), from its last benchmarked run: the report reads
    /// them here instead of running the method once more.</summary>
    internal static readonly ConcurrentDictionary<(string Model, string Method), double> MethodCosts = new();

    private CpuBackend? _backend;
    private AttributionResult? _last;
    private List<PromptPair> _pairs = [];
    private AttributionOptions _options = new();

    [ParamsSource(nameof(Models))]
    public string Model { get; set; } = "";

    [Params("atp", "atp*")]
    public string Method { get; set; } = "";

    public static IEnumerable<string> Models() => BenchModels.Names;

    [GlobalSetup]
    public void Setup()
    {
        var model = BenchModels.Load(Model);
        _backend = new CpuBackend(model.Weights);
        _pairs = BenchModels.Pairs(Model, model);
        _options = new AttributionOptions
        {
            Method = AttributionMethods.Parse(Method), Positions = PositionMode.Both, PairsPerBatch = _pairs.Count,
        };
    }

    [Benchmark]
    public AttributionResult Attribute() => _last = AtpFast.Attribution.Attribution.Run(_backend!, _pairs, _options);

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_last is not null) MethodCosts[(Model, Method)] = _last.MethodCost;
        _backend?.Dispose();
    }
}

/// <summary>Exact patching throughput on one pair: a stratified sample of single nodes (the PyTorch peer's scheme),
/// with prefix reuse and batching on, each off, and both off.</summary>
public class ExactPatchingBenchmarks
{
    public const int Sample = 4096;
    private CpuBackend? _backend;
    private IRunCache? _base, _source;
    private MetricTargets? _targets;
    private PatchRun[] _runs = [];
    private double[] _values = [];
    private PatchingOptions _patching;

    [ParamsSource(nameof(Models))]
    public string Model { get; set; } = "";

    [Params("prefix+batched", "batched", "prefix", "neither")]
    public string Mode { get; set; } = "";

    public static IEnumerable<string> Models() => BenchModels.Names;

    [GlobalSetup]
    public void Setup()
    {
        var model = BenchModels.Load(Model);
        _backend = new CpuBackend(model.Weights);
        var pair = BenchModels.Pairs(Model, model)[0];
        _base = _backend.Run(pair.Clean, 1, pair.Length);
        _source = _backend.Run(pair.Noise, 1, pair.Length);
        _targets = new MetricTargets(MetricKind.LogitDiff, [pair.Answer], [pair.Wrong]);
        var nodes = BenchModels.StratifiedSample(new NodeSpace(model.Config, pair.Length), Sample, seed: 0);
        _runs = [.. nodes.Select((_, i) => new PatchRun(0, nodes.AsMemory(i, 1)))];
        _values = new double[_runs.Length];
        _patching = new PatchingOptions(DisablePrefixReuse: Mode is "batched" or "neither", MaxRunsPerBatch: Mode is "prefix" or "neither" ? 1 : 0);
    }

    [Benchmark]
    public void Patch() => _backend!.PatchedMetric(_base!, _source!, _runs, _targets!, _values, _patching);

    [GlobalCleanup]
    public void Cleanup()
    {
        _base?.Dispose();
        _source?.Dispose();
        _backend?.Dispose();
    }
}

/// <summary>Runs the attribution suite and writes perf/results/cpu-attribution.md with the PyTorch peer measured in
/// the same run, on the same models, pairs' shapes and thread count.</summary>
internal static class AttributionSuite
{
    public static string Run(IConfig config, int threads, bool quick, double peak)
    {
        var atp = BenchmarkRunner.Run<AtpBenchmarks>(config);
        var exact = BenchmarkRunner.Run<ExactPatchingBenchmarks>(config);
        var report = new StringBuilder();
        void Line(FormattableString s) => report.AppendLine(s.ToString(CultureInfo.InvariantCulture));
        Line($"# CPU attribution benchmarks");
        report.AppendLine();
        Line($"- machine: {AtpFast.Cli.CpuPeak.CpuName()}, {threads} cores, FMA peak {peak:F0} GFLOP/s (fp32), .NET {Environment.Version}");
        Line($"- date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; BenchmarkDotNet {(quick ? "dry" : "short")} job, in-process, mean of the iterations; PyTorch peer: tools/bench_torch_attribution.py (float32 eager, medians), same thread count, run right after");
        Line($"- command: `dotnet run -c Release --project perf/AtpFast.Benchmarks -- attribution`");
        Line($"- cost unit: one forward pass of one prompt (docs/attribution.md); GFLOP/s = forward-equivalents × the unit's FLOPs / time");
        report.AppendLine();
        Line($"## AtP and AtP* per prompt pair (all q/k/v/z, neuron and resid_pre nodes, per position and @*; logit difference, noising)");
        report.AppendLine();
        Line($"| model | pairs × tokens | method | AtpFast ms/pair | forward-equivalents/pair | GFLOP/s | % peak | PyTorch ms/pair | speed-up |");
        Line($"|---|---|---|---|---|---|---|---|---|");
        var torch = new Dictionary<string, JsonElement?>();
        foreach (string model in BenchModels.Names)
        {
            var loaded = BenchModels.Load(model);
            var pairs = BenchModels.Pairs(model, loaded);
            torch[model] = Peers.TorchAttribution(model, pairs.Count, threads, quick);
            foreach (string method in new[] { "atp", "atp*" })
            {
                double methodCost = AtpBenchmarks.MethodCosts.TryGetValue((model, method), out double c) ? c
                    : throw new InvalidOperationException($"{model} {method}: the benchmark kept no result");
                double seconds = Mean(atp, r => (string)r.Parameters["Model"] == model && (string)r.Parameters["Method"] == method) / 1e9;
                double msPerPair = 1e3 * seconds / pairs.Count;
                double flops = methodCost * new CostModel(loaded.Config, pairs[0].Length).ForwardFlops * pairs.Count;
                double gflops = flops / seconds / 1e9;
                double? torchMs = torch[model]?.GetProperty(method == "atp" ? "atp_ms_per_pair" : "atpstar_ms_per_pair").GetDouble();
                Line($"| {model} | {pairs.Count} × {pairs[0].Length} | {method} | {msPerPair:F3} | {methodCost:F2} | {gflops:F1} | {100 * gflops / peak:F0}% | {(torchMs is { } t ? t.ToString("F3", CultureInfo.InvariantCulture) : "n/a")} | {(torchMs is { } t2 ? (t2 / msPerPair).ToString("F2", CultureInfo.InvariantCulture) + "×" : "n/a")} |");
            }
        }
        report.AppendLine();
        Line($"## Exact patching throughput, one pair, {ExactPatchingBenchmarks.Sample} single nodes sampled per node kind as the PyTorch peer samples them");
        report.AppendLine();
        Line($"| model | mode | AtpFast nodes/s | vs PyTorch per-node loop | vs PyTorch batched (256 per batch) |");
        Line($"|---|---|---|---|---|");
        foreach (string model in BenchModels.Names)
        {
            var t = torch[model];
            double? loop = t?.GetProperty("exact_loop_nodes_per_s").GetDouble(), batched = t?.GetProperty("exact_batched_nodes_per_s").GetDouble();
            foreach (string mode in new[] { "prefix+batched", "batched", "prefix", "neither" })
            {
                double seconds = Mean(exact, r => (string)r.Parameters["Model"] == model && (string)r.Parameters["Mode"] == mode) / 1e9;
                double rate = ExactPatchingBenchmarks.Sample / seconds;
                Line($"| {model} | {mode} | {rate:N0} | {Ratio(rate, loop)} | {Ratio(rate, batched)} |");
            }
            if (t is { } tj)
                Line($"| {model} | PyTorch {tj.GetProperty("torch").GetString()} ({tj.GetProperty("blas").GetString()!.Split(' ')[0]}): loop {loop:N0} nodes/s, batched {batched:N0} nodes/s | | | |");
        }
        report.AppendLine();
        report.AppendLine("Modes: prefix = each patched run starts at the node's layer and position from the cached clean run; batched = runs with the same start stacked into one batch (default: both). PyTorch's loop runs one full forward per node with a hook (TransformerLens style); its batched version stacks 256 copies of the prompt, each row patching a different node.");
        return report.ToString();

        static string Ratio(double ours, double? theirs) => theirs is { } t && t > 0 ? (ours / t).ToString("F1", CultureInfo.InvariantCulture) + "×" : "n/a";
    }

    private static double Mean(Summary summary, Func<BenchmarkDotNet.Running.BenchmarkCase, bool> match)
    {
        var r = summary.Reports.First(x => match(x.BenchmarkCase));
        return r.ResultStatistics?.Mean ?? throw new InvalidOperationException($"{r.BenchmarkCase.DisplayInfo}: no result");
    }
}
