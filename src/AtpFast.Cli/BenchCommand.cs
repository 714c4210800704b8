using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.Intrinsics.X86;
using System.Text.Json;
using System.Text.Json.Serialization;
using AtpFast.Attribution;
using AtpFast.Cpu;
using AtpFast.Tasks;
using Spectre.Console;

namespace AtpFast.Cli;

/// <summary>One timed piece of work: a kernel (a GEMM shape) or a whole pass through a backend.</summary>
/// <param name="Name">Stable name (baselines are matched by it), shapes included.</param>
/// <param name="Group">"kernel" or "pass".</param>
/// <param name="Device">Where it runs (cpu, a backend's name).</param>
/// <param name="Flops">FLOPs of one execution (from the cost model or 2·M·K·N).</param>
/// <param name="Run">Executes it once.</param>
internal sealed record BenchItem(string Name, string Group, string Device, double Flops, Action Run);

/// <summary>Repeated timings of one item: the median is what is compared, the spread (interquartile range over the
/// median) says how noisy it is.</summary>
internal sealed record BenchMeasurement(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("group")] string Group,
    [property: JsonPropertyName("device")] string Device,
    [property: JsonPropertyName("flops")] double Flops,
    [property: JsonPropertyName("seconds")] double[] Seconds)
{
    [JsonPropertyName("median_s")] public double Median => Quantile(0.5);

    [JsonPropertyName("spread")] public double Spread => Median > 0 ? (Quantile(0.75) - Quantile(0.25)) / Median : 0;

    [JsonIgnore] public double Gflops => Flops / Median / 1e9;

    private double Quantile(double q)
    {
        if (Seconds.Length == 0) return double.NaN;
        var s = Seconds.Order().ToArray();
        double pos = q * (s.Length - 1);
        int lo = (int)Math.Floor(pos), hi = (int)Math.Ceiling(pos);
        return s[lo] + (s[hi] - s[lo]) * (pos - lo);
    }
}

/// <summary>A saved benchmark run (bench --save), compared against by bench --compare.</summary>
internal sealed record BenchBaseline(
    [property: JsonPropertyName("format")] string Format,
    [property: JsonPropertyName("machine")] string Machine,
    [property: JsonPropertyName("threads")] int Threads,
    [property: JsonPropertyName("model_sha256")] string ModelSha256,
    [property: JsonPropertyName("written")] string Written,
    [property: JsonPropertyName("items")] BenchMeasurement[] Items)
{
    public const string CurrentFormat = "atpfast-bench/1";
}

/// <summary>One row of a comparison against a baseline.</summary>
internal sealed record BenchComparison(string Name, double? OldMedian, double? NewMedian, double? Ratio, double Spread, string Status)
{
    public bool Regressed => Status == "REGRESSED";

    /// <summary>Compares medians: ratio = new/old. A ratio above 1 + threshold is a regression unless the spread of either
    /// run exceeds the threshold (then the difference cannot be told from noise: "noisy"); below 1 − threshold it is
    /// "faster"; items in one run only are "new" or "missing" (not failures).</summary>
    public static List<BenchComparison> Compare(IReadOnlyList<BenchMeasurement> baseline, IReadOnlyList<BenchMeasurement> current, double threshold)
    {
        var rows = new List<BenchComparison>();
        var old = baseline.GroupBy(m => m.Name).ToDictionary(g => g.Key, g => g.First());
        foreach (var m in current)
        {
            if (!old.TryGetValue(m.Name, out var o))
            {
                rows.Add(new BenchComparison(m.Name, null, m.Median, null, m.Spread, "new"));
                continue;
            }
            double ratio = m.Median / o.Median, spread = Math.Max(m.Spread, o.Spread);
            string status = ratio <= 1 + threshold ? (ratio < 1 - threshold ? "faster" : "ok")
                : spread > threshold ? "noisy" : "REGRESSED";
            rows.Add(new BenchComparison(m.Name, o.Median, m.Median, ratio, spread, status));
        }
        foreach (var o in baseline.Where(o => current.All(m => m.Name != o.Name)))
            rows.Add(new BenchComparison(o.Name, o.Median, null, null, o.Spread, "missing"));
        return rows;
    }
}

/// <summary>
/// <c>atpfast bench</c>: per-kernel and per-pass timings with achieved GFLOP/s and % of the device's peak.
/// Kernels: the CPU GEMM at the model's own projection shapes and at GPT-2-small shapes. Passes, through the backend:
/// the cached forward, the activation-only backward, a GradDrop pass, the attribution products with the QK fix and a
/// batch of exactly patched runs, with FLOPs from <see cref="CostModel"/>. Each item runs <c>--repeats</c> times (each
/// sample long enough to time); medians are compared against <c>--compare baseline.json</c>, exit code 3 on a slowdown
/// beyond <c>--max-slowdown</c>. GPU kernels join as another <see cref="Suites"/> entry.
/// </summary>
internal static class BenchCommand
{
    /// <summary>The suites: each yields items for a model on a backend. A GPU suite is added here.</summary>
    internal static readonly List<Func<BenchContext, IEnumerable<BenchItem>>> Suites = [CpuGemmKernels, BackendPasses];

    internal sealed record BenchContext(ModelWeights Weights, IBackend Backend, IReadOnlyList<PromptPair> Pairs, bool Quick);

    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "ONNX file (default: the embedded IOI model)" };
        var backend = new Option<string>("--backend") { Description = "backend for the passes: cpu, cuda or auto", DefaultValueFactory = _ => "auto" };
        var repeats = new Option<int>("--repeats") { Description = "timed samples per item (the median is reported)", DefaultValueFactory = _ => 9 };
        var filter = new Option<string?>("--filter") { Description = "only items whose name contains this text" };
        var quick = new Option<bool>("--quick") { Description = "smaller shapes and shorter samples (a smoke test, not a measurement)" };
        var save = new Option<string?>("--save") { Description = "write the measurements to this JSON file (a baseline)" };
        var compare = new Option<string?>("--compare") { Description = "compare against a baseline written by --save; exit code 3 on a regression" };
        var maxSlowdown = new Option<string>("--max-slowdown") { Description = "largest accepted slowdown of a median, e.g. 5%", DefaultValueFactory = _ => "5%" };
        var command = new Command("bench", "Kernel and pass timings with GFLOP/s and % of peak; --save / --compare for performance-regression tests.")
        {
            model, backend, repeats, filter, quick, save, compare, maxSlowdown,
        };
        command.SetAction(parse => Execute(parse.GetValue(model), parse.GetValue(backend)!, parse.GetValue(repeats), parse.GetValue(filter),
            parse.GetValue(quick), parse.GetValue(save), parse.GetValue(compare), parse.GetValue(maxSlowdown)!));
        return command;
    }

    internal static double ParseThreshold(string text)
    {
        string t = text.Trim();
        bool percent = t.EndsWith('%');
        if (!double.TryParse(percent ? t[..^1] : t, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !(v >= 0) || double.IsInfinity(v))
            throw new AtpFastException($"--max-slowdown {text}: expected a percentage such as 5% (or a fraction such as 0.05)");
        return percent ? v / 100 : v;
    }

    internal static int Execute(string? modelPath, string backendName, int repeats, string? filter, bool quick, string? save, string? compare, string maxSlowdown)
    {
        if (repeats < 3) throw new AtpFastException($"--repeats {repeats}: at least 3 samples are needed for a median and a spread");
        double threshold = ParseThreshold(maxSlowdown);
        BenchBaseline? baseline = null;
        if (compare is not null)
        {
            if (!File.Exists(compare)) throw new AtpFastException($"--compare {compare}: baseline file not found");
            try
            {
                baseline = JsonSerializer.Deserialize<BenchBaseline>(File.ReadAllText(compare));
            }
            catch (Exception e) when (e is JsonException or IOException or NotSupportedException)
            {
                throw new AtpFastException($"--compare {compare}: not a baseline written by bench --save ({e.Message})", e);
            }
            if (baseline?.Format != BenchBaseline.CurrentFormat || baseline.Items is null)
                throw new AtpFastException($"--compare {compare}: not a baseline written by bench --save (format '{baseline?.Format}')");
        }
        var source = ModelSource.Load(modelPath, tokenizerPath: null);
        var config = source.Model.Config;
        using var backend = Gpu.Backends.Create(source.Model.Weights, backendName);
        IReadOnlyList<PromptPair> pairs = modelPath is null
            ? [.. DemoModel.TaskPairs(source.Tokenizer, config.VocabSize, "embedded tasks").Take(quick ? 4 : 16)]
            : SelftestCommand.RandomPairs(config, seqLen: quick ? 8 : 32, count: quick ? 4 : 16, seed: 3);
        var context = new BenchContext(source.Model.Weights, backend, pairs, quick);
        var items = Suites.SelectMany(s => s(context)).Where(i => filter is null || i.Name.Contains(filter, StringComparison.OrdinalIgnoreCase)).ToList();
        if (items.Count == 0) throw new AtpFastException($"--filter {filter}: no benchmark item matches");
        var (peak, peakSource) = Peak.CpuGflops();
        AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"{CpuPeak.CpuName()}, {Environment.ProcessorCount} threads; fp32 peak {(peak is { } p ? p.ToString("F0", CultureInfo.InvariantCulture) + " GFLOP/s" : "unknown")} ({peakSource}); ") +
            $"model {source.Description}; passes on {backend.Name}; {repeats} samples per item"));

        var measurements = new List<BenchMeasurement>();
        AnsiConsole.Status().Start("benchmarking", ctx =>
        {
            foreach (var item in items)
            {
                ctx.Status(Markup.Escape(item.Name));
                measurements.Add(Measure(item, repeats, quick ? 0.005 : 0.05));
            }
        });
        var table = new Table().AddColumns("item", "device", "median", "spread", "GFLOP/s", "% of peak");
        foreach (var m in measurements)
        {
            table.AddRow(Markup.Escape(m.Name), Markup.Escape(m.Device), Time(m.Median), Pct(m.Spread), m.Gflops.ToString("F1", CultureInfo.InvariantCulture),
                m.Device == "cpu" || m.Device.StartsWith("cpu", StringComparison.Ordinal)
                    ? (peak is { } pk ? (100 * m.Gflops / pk).ToString("F0", CultureInfo.InvariantCulture) + "%" : "n/a") : "n/a");
        }
        AnsiConsole.Write(table);
        if (save is not null)
        {
            var file = new BenchBaseline(BenchBaseline.CurrentFormat, CpuPeak.CpuName(), Environment.ProcessorCount, source.Model.Sha256,
                DateTime.UtcNow.ToString("u", CultureInfo.InvariantCulture), [.. measurements]);
            AttributionTable.WriteAtomically(save, w => w.Write(JsonSerializer.Serialize(file, SummaryJson.Options)));
            AnsiConsole.MarkupLine(Markup.Escape($"wrote {save}"));
        }
        if (baseline is null) return ExitCodes.Ok;

        if (baseline.Machine != CpuPeak.CpuName() || baseline.Threads != Environment.ProcessorCount)
            AnsiConsole.MarkupLine(Markup.Escape($"[warning] the baseline was measured on {baseline.Machine} with {baseline.Threads} threads; this machine is {CpuPeak.CpuName()} with {Environment.ProcessorCount}"));
        var rows = BenchComparison.Compare(baseline.Items, measurements, threshold);
        var cmp = new Table().AddColumns("item", "old median", "new median", "new/old", "spread", "status");
        foreach (var r in rows)
        {
            string status = r.Status switch
            {
                "REGRESSED" => "[red]REGRESSED[/]", "noisy" => "[yellow]noisy[/]", "faster" => "[green]faster[/]", _ => Markup.Escape(r.Status),
            };
            cmp.AddRow(Markup.Escape(r.Name), r.OldMedian is { } o ? Time(o) : "", r.NewMedian is { } n ? Time(n) : "",
                r.Ratio is { } x ? x.ToString("F3", CultureInfo.InvariantCulture) : "", Pct(r.Spread), status);
        }
        AnsiConsole.Write(cmp);
        int regressed = rows.Count(r => r.Regressed), noisy = rows.Count(r => r.Status == "noisy");
        AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"threshold {threshold:P1} on the ratio of medians: {regressed} regressed, {noisy} noisy (spread above the threshold), {rows.Count - regressed - noisy} within it or new/missing")));
        return regressed > 0 ? ExitCodes.PerformanceRegression : ExitCodes.Ok;
    }

    /// <summary>Warm-up, then <paramref name="repeats"/> samples, each the mean of enough executions to last at least
    /// <paramref name="minSample"/> seconds.</summary>
    internal static BenchMeasurement Measure(BenchItem item, int repeats, double minSample)
    {
        var clock = Stopwatch.StartNew();
        item.Run();
        int inner = 1;
        double once = clock.Elapsed.TotalSeconds;
        clock.Restart();
        item.Run();
        once = Math.Min(once, clock.Elapsed.TotalSeconds);
        if (once < minSample) inner = (int)Math.Min(100_000, Math.Ceiling(minSample / Math.Max(once, 1e-7)));
        var samples = new double[repeats];
        for (int r = 0; r < repeats; r++)
        {
            clock.Restart();
            for (int i = 0; i < inner; i++) item.Run();
            samples[r] = clock.Elapsed.TotalSeconds / inner;
        }
        return new BenchMeasurement(item.Name, item.Group, item.Device, item.Flops, samples);
    }

    /// <summary>The CPU GEMM (fp32, all cores) at the model's projection shapes for a batch of the bench's pairs, and at
    /// GPT-2-small shapes.</summary>
    private static IEnumerable<BenchItem> CpuGemmKernels(BenchContext context)
    {
        var c = context.Weights.Config;
        int rows = context.Pairs.Count * context.Pairs[0].Length;
        var shapes = new List<(string What, int M, int K, int N)>
        {
            ("q/k/v projection", rows, c.DModel, c.QueryWidth + 2 * c.KvWidth),
            ("output projection", rows, c.QueryWidth, c.DModel),
            ("mlp in", rows, c.DModel, c.DMlp * (c.GatedMlp ? 2 : 1)),
            ("mlp out", rows, c.DMlp, c.DModel),
            ("unembedding", context.Pairs.Count, c.DModel, c.VocabSize),
        };
        if (!context.Quick)
        {
            shapes.Add(("gpt2-small", 512, 768, 3072));
            shapes.Add(("gpt2-small", 2048, 768, 768));
        }
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount };
        foreach (var (what, m, k, n) in shapes)
        {
            var rng = new Random(1);
            var a = new float[m * k];
            var b = new float[k * n];
            for (int i = 0; i < a.Length; i++) a[i] = (float)rng.NextDouble();
            for (int i = 0; i < b.Length; i++) b[i] = (float)rng.NextDouble();
            var bias = new float[n];
            var output = new float[m * n];
            yield return new BenchItem(string.Create(CultureInfo.InvariantCulture, $"gemm {m}x{k}x{n} ({what})"), "kernel", "cpu", 2.0 * m * k * n,
                () => Gemm.Multiply(a, m, k, b, 0, n, bias, 0, output, parallel));
        }
    }

    /// <summary>Whole passes through the backend on the bench's pairs (one batch), FLOPs from the cost model.</summary>
    private static IEnumerable<BenchItem> BackendPasses(BenchContext context)
    {
        var backend = context.Backend;
        var c = context.Weights.Config;
        var pairs = context.Pairs;
        int t = pairs[0].Length, batch = pairs.Count;
        var cost = new CostModel(c, t);
        double unit = cost.ForwardFlops * batch;
        var clean = pairs.SelectMany(p => p.Clean).ToArray();
        var noise = pairs.SelectMany(p => p.Noise).ToArray();
        var targets = new MetricTargets(MetricKind.LogitDiff, [.. pairs.Select(p => p.Answer)], [.. pairs.Select(p => p.Wrong)]);
        // Cached runs and gradients shared by the passes (created lazily, on the first measurement).
        IRunCache? baseRun = null, sourceRun = null;
        IGradientCache? full = null, dropped = null;
        void Ensure()
        {
            baseRun ??= backend.Run(clean, batch, t);
            sourceRun ??= backend.Run(noise, batch, t);
            if (full is null)
            {
                full = backend.CreateGradients(baseRun);
                backend.Backward(baseRun, targets, full);
            }
            dropped ??= backend.CreateGradients(baseRun);
        }
        string shape = string.Create(CultureInfo.InvariantCulture, $"{batch}x{t}");
        yield return new BenchItem($"forward {shape}", "pass", backend.Name, unit, () => backend.Run(clean, batch, t).Dispose());
        yield return new BenchItem($"backward {shape}", "pass", backend.Name, cost.Backward(2) * unit, () =>
        {
            Ensure();
            backend.Backward(baseRun!, targets, full!);
        });
        if (c.Layers >= 2)
        {
            yield return new BenchItem($"graddrop pass (layer {c.Layers - 1}) {shape}", "pass", backend.Name, cost.GradDropPass(c.Layers - 1) * unit, () =>
            {
                Ensure();
                backend.BackwardDroppingLayer(baseRun!, full!, c.Layers - 1, dropped!);
            });
        }
        var space = new NodeSpace(c, t);
        var sums = new double[space.Count];
        var signed = new double[space.Count];
        var weights = Enumerable.Repeat(1.0, c.Layers).ToArray();
        yield return new BenchItem($"attribution products + QK fix {shape}", "pass", backend.Name, cost.Products(c.Layers, qkFix: true) * unit, () =>
        {
            Ensure();
            backend.AccumulateAttribution(new AttributionRequest(baseRun!, sourceRun!, full!, NodeTypes.Default, PositionMode.PerPosition, true, 0,
                c.Layers - 1, weights), sums, signed);
        });
        var rng = new Random(5);
        var ids = space.Select(NodeTypes.Default, PositionMode.PerPosition);
        int count = context.Quick ? 256 : 2048;
        var runs = new PatchRun[count];
        double patchedFlops = 0;
        for (int i = 0; i < count; i++)
        {
            var node = space[ids[rng.Next(ids.Length)]];
            runs[i] = new PatchRun(i % batch, new[] { node });
            patchedFlops += cost.Patched(PatchPlan.For([node], c.Layers, t), 2) * cost.ForwardFlops;
        }
        var values = new double[count];
        yield return new BenchItem(string.Create(CultureInfo.InvariantCulture, $"exact patching {count} single-node runs {shape}"), "pass", backend.Name, patchedFlops, () =>
        {
            Ensure();
            backend.PatchedMetric(baseRun!, sourceRun!, runs, targets, values);
        });
    }

    private static string Time(double seconds) => seconds switch
    {
        < 1e-3 => string.Create(CultureInfo.InvariantCulture, $"{seconds * 1e6:F1} µs"),
        < 1 => string.Create(CultureInfo.InvariantCulture, $"{seconds * 1e3:F2} ms"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{seconds:F3} s"),
    };

    private static string Pct(double fraction) => string.Create(CultureInfo.InvariantCulture, $"{100 * fraction:F1}%");
}

/// <summary>The fp32 peak of this machine's CPU: ATPFAST_CPU_PEAK_GFLOPS or a measured entry of the known-machine table
/// (<see cref="CpuPeak"/>), else an estimate from the cores, the vector width and the nominal clock (said so in the output).</summary>
internal static class Peak
{
    public static (double? Gflops, string Source) CpuGflops()
    {
        if (CpuPeak.Known() is { } known) return known;
        int cores = Environment.ProcessorCount;
        if (!Fma.IsSupported) return (null, "no FMA: unknown");
        int lanes = Avx512F.IsSupported ? 16 : 8;
        double? ghz = null;
        try
        {
            if (File.Exists("/proc/cpuinfo") && File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("cpu MHz", StringComparison.Ordinal)) is { } line
                && double.TryParse(line.Split(':', 2)[1].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double mhz))
                ghz = mhz / 1000;
        }
        catch (IOException)
        {
        }
        return ghz is { } g
            ? (cores * 2 * lanes * 2 * g, string.Create(CultureInfo.InvariantCulture, $"estimated: {cores} threads × 2 FMA × {lanes} lanes × 2 × {g:F2} GHz nominal; set ATPFAST_CPU_PEAK_GFLOPS for the true figure"))
            : (null, "clock unknown: set ATPFAST_CPU_PEAK_GFLOPS");
    }
}
