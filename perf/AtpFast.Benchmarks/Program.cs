using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using AtpFast;
using AtpFast.Benchmarks;
using AtpFast.Cpu;
using AtpFast.Onnx;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

// CPU benchmarks, each against a peer measured in the same run on the same machine and thread count:
//   foundation:  GEMM against OpenBLAS and forward tokens/s against PyTorch eager  → perf/results/cpu-foundation.md
//   attribution: AtP / AtP* per pair and exact patching nodes/s against PyTorch   → perf/results/cpu-attribution.md
//   dotnet run -c Release --project perf/AtpFast.Benchmarks [-- foundation|attribution] [--quick]
bool quick = args.Contains("--quick");
string suite = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal)) ?? "all";
if (suite is not ("all" or "foundation" or "attribution"))
{
    Console.Error.WriteLine($"unknown suite '{suite}' (expected foundation or attribution)");
    return 2;
}
int threads = Environment.ProcessorCount;
Environment.SetEnvironmentVariable("OPENBLAS_NUM_THREADS", threads.ToString(CultureInfo.InvariantCulture));
OpenBlas.SetThreads(threads);
var peak = Machine.PeakGflops();

var job = (quick ? Job.Dry : Job.ShortRun).WithToolchain(InProcessEmitToolchain.Instance)
    .WithWarmupCount(quick ? 1 : 3).WithIterationCount(quick ? 3 : 10);
var config = ManualConfig.CreateEmpty().AddJob(job).AddColumnProvider(DefaultColumnProviders.Instance)
    .AddLogger(BenchmarkDotNet.Loggers.ConsoleLogger.Default).WithOptions(ConfigOptions.DisableOptimizationsValidator);
string outDir = Path.Combine(Peers.RepoRoot, "perf", "results");
Directory.CreateDirectory(outDir);
if (suite is "all" or "attribution")
{
    string text = AttributionSuite.Run(config, threads, quick, peak);
    string file = Path.Combine(outDir, quick ? "cpu-attribution-quick.md" : "cpu-attribution.md");
    File.WriteAllText(file, text);
    Console.WriteLine(text);
    Console.WriteLine("wrote " + file);
}
if (suite is "attribution") return 0;

var gemm = BenchmarkRunner.Run<GemmBenchmarks>(config);
var forward = BenchmarkRunner.Run<ForwardBenchmarks>(config);

var report = new StringBuilder();
report.AppendLine("# CPU foundation benchmarks");
report.AppendLine();
report.AppendLine(CultureInfo.InvariantCulture, $"- machine: {AtpFast.Cli.CpuPeak.CpuName()}, {threads} cores, FMA peak {peak:F0} GFLOP/s (fp32), .NET {Environment.Version}, {RuntimeInformation.OSDescription}");
report.AppendLine(CultureInfo.InvariantCulture, $"- date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; BenchmarkDotNet {(quick ? "dry" : "short")} job, in-process; OpenBLAS {OpenBlas.Version()} with {threads} threads");
report.AppendLine("- command: `dotnet run -c Release --project perf/AtpFast.Benchmarks`");
report.AppendLine();
report.AppendLine("## GEMM C[M,N] = A[M,K]·B[K,N] + bias (fp32)");
report.AppendLine();
report.AppendLine("| M | K | N | AtpFast GFLOP/s | % peak | OpenBLAS GFLOP/s | % peak | AtpFast / OpenBLAS |");
report.AppendLine("|---|---|---|---|---|---|---|---|");
foreach (string shape in GemmBenchmarks.Shapes)
{
    var (m, k, n) = GemmBenchmarks.Parse(shape);
    double flops = 2.0 * m * k * n;
    // BenchmarkDotNet reports nanoseconds, so flops / ns = GFLOP/s.
    double ours = flops / Mean(gemm, nameof(GemmBenchmarks.AtpFast), shape);
    double blas = flops / Mean(gemm, nameof(GemmBenchmarks.OpenBlasSgemm), shape);
    report.AppendLine(CultureInfo.InvariantCulture,
        $"| {m} | {k} | {n} | {ours:F1} | {100 * ours / peak:F0}% | {blas:F1} | {100 * blas / peak:F0}% | {ours / blas:F2} |");
}

report.AppendLine();
report.AppendLine("## Forward pass, embedded IOI model (GPT-2 style, 4 layers, d 128), fp32");
report.AppendLine();
var torch = Peers.TorchForward(ForwardBenchmarks.Batch, ForwardBenchmarks.Seq, threads, quick);
double tokens = ForwardBenchmarks.Batch * ForwardBenchmarks.Seq;
double oursSeconds = Mean(forward, nameof(ForwardBenchmarks.IoiForward), null) / 1e9;
double oursTps = tokens / oursSeconds;
double forwardFlops = 2.0 * ForwardBenchmarks.NonEmbeddingParameters * tokens;
report.AppendLine("| engine | batch × seq | median/mean s | tokens/s | GFLOP/s (2N per token) | ratio |");
report.AppendLine("|---|---|---|---|---|---|");
report.AppendLine(CultureInfo.InvariantCulture, $"| AtpFast CpuBackend | {ForwardBenchmarks.Batch} × {ForwardBenchmarks.Seq} | {oursSeconds:F5} (mean) | {oursTps:F0} | {forwardFlops / oursSeconds / 1e9:F1} | {(torch is null ? "n/a" : (oursTps / torch.Value.TokensPerSecond).ToString("F2", CultureInfo.InvariantCulture))} × PyTorch |");
if (torch is { } t)
    report.AppendLine(CultureInfo.InvariantCulture, $"| PyTorch {t.Version} eager ({t.Blas}) | {ForwardBenchmarks.Batch} × {ForwardBenchmarks.Seq} | {t.MedianSeconds:F5} (median) | {t.TokensPerSecond:F0} | {forwardFlops / t.MedianSeconds / 1e9:F1} | 1 |");
else
    report.AppendLine("| PyTorch | not measured (torch not available: `apt-get install python3-torch`) | | | | |");

string outFile = Path.Combine(outDir, quick ? "cpu-foundation-quick.md" : "cpu-foundation.md");
File.WriteAllText(outFile, report.ToString());
Console.WriteLine(report);
Console.WriteLine("wrote " + outFile);
return 0;

static double Mean(Summary summary, string method, string? shape)
{
    var r = summary.Reports.First(x => x.BenchmarkCase.Descriptor.WorkloadMethod.Name == method &&
        (shape is null || (string)x.BenchmarkCase.Parameters["Shape"] == shape));
    return r.ResultStatistics?.Mean ?? throw new InvalidOperationException($"{method} {shape}: no result");
}

namespace AtpFast.Benchmarks
{
    /// <summary>GEMM at the IOI model's shapes (M = batch·seq = 512) and at GPT-2-small shapes (M = 512, 2048).</summary>
    public class GemmBenchmarks
    {
        public static readonly string[] Shapes =
        [
            "512,128,384", "512,128,512", "512,512,128",
            "512,768,768", "512,768,3072", "512,3072,768",
            "2048,768,768", "2048,768,3072", "2048,3072,768",
        ];

        private float[] _a = [], _b = [], _bias = [], _c = [];
        private int _m, _k, _n;
        private readonly ParallelOptions _parallel = new() { MaxDegreeOfParallelism = Environment.ProcessorCount };

        [ParamsSource(nameof(ShapeValues))]
        public string Shape { get; set; } = "";

        public static IEnumerable<string> ShapeValues() => Shapes;

        public static (int M, int K, int N) Parse(string shape)
        {
            int[] p = shape.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
            return (p[0], p[1], p[2]);
        }

        [GlobalSetup]
        public void Setup()
        {
            (_m, _k, _n) = Parse(Shape);
            var rng = new Random(1);
            _a = Enumerable.Range(0, _m * _k).Select(_ => (float)rng.NextDouble()).ToArray();
            _b = Enumerable.Range(0, _k * _n).Select(_ => (float)rng.NextDouble()).ToArray();
            _bias = new float[_n];
            _c = new float[_m * _n];
        }

        [Benchmark]
        public void AtpFast() => Gemm.Multiply(_a, _m, _k, _b, 0, _n, _bias, 0, _c, _parallel);

        [Benchmark(Baseline = true)]
        public void OpenBlasSgemm() => OpenBlas.Sgemm(_a, _b, _c, _m, _k, _n);
    }

    /// <summary>Forward pass of the embedded IOI model on a sweep-sized batch.</summary>
    public class ForwardBenchmarks
    {
        public const int Batch = 32, Seq = 16;
        private CpuBackend? _backend;
        private int[] _ids = [];
        private float[] _logits = [];

        public static long NonEmbeddingParameters => OnnxImporter.Load(Peers.IoiModel).Config.NonEmbeddingParameters;

        [GlobalSetup]
        public void Setup()
        {
            var model = OnnxImporter.Load(Peers.IoiModel);
            _backend = new CpuBackend(model.Weights);
            var rng = new Random(2);
            _ids = Enumerable.Range(0, Batch * Seq).Select(_ => rng.Next(model.Config.VocabSize)).ToArray();
            _logits = new float[Batch * Seq * model.Config.VocabSize];
        }

        [Benchmark]
        public void IoiForward() => _backend!.Forward(_ids, Batch, Seq, _logits);

        [GlobalCleanup]
        public void Cleanup() => _backend?.Dispose();
    }

    /// <summary>OpenBLAS (Debian libopenblas0-pthread) through its C interface.</summary>
    internal static partial class OpenBlas
    {
        private const string Library = "libopenblas.so.0";

        [LibraryImport(Library, EntryPoint = "cblas_sgemm")]
        private static unsafe partial void CblasSgemm(int order, int transA, int transB, int m, int n, int k, float alpha,
            float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);

        [LibraryImport(Library, EntryPoint = "openblas_set_num_threads")]
        private static partial void SetNumThreads(int threads);

        [LibraryImport(Library, EntryPoint = "openblas_get_config")]
        private static partial IntPtr GetConfig();

        public static void SetThreads(int threads) => SetNumThreads(threads);

        public static string Version() => Marshal.PtrToStringAnsi(GetConfig()) ?? "unknown";

        /// <summary>C = A·B (row-major; bias excluded: OpenBLAS has no epilogue, and a bias add is O(MN)).</summary>
        public static unsafe void Sgemm(float[] a, float[] b, float[] c, int m, int k, int n)
        {
            const int RowMajor = 101, NoTrans = 111;
            fixed (float* pa = a, pb = b, pc = c)
                CblasSgemm(RowMajor, NoTrans, NoTrans, m, n, k, 1f, pa, k, pb, n, 0f, pc, n);
        }
    }

    /// <summary>Peak fp32 FMA throughput of the machines we benchmark on (<see cref="AtpFast.Cli.CpuPeak"/>, shared with
    /// `atpfast bench`). An unknown CPU fails loudly: add it to the table, or set ATPFAST_CPU_PEAK_GFLOPS.</summary>
    internal static class Machine
    {
        public static double PeakGflops() => AtpFast.Cli.CpuPeak.Known()?.Gflops ?? throw new InvalidOperationException(
            $"unknown CPU '{AtpFast.Cli.CpuPeak.CpuName()}' with {Environment.ProcessorCount} cores: add its fp32 FMA peak to CpuPeak.Known " +
            $"(src/AtpFast.Cli/CpuPeak.cs) or set {AtpFast.Cli.CpuPeak.Variable}");
    }

    /// <summary>The PyTorch peer, run as a subprocess in the same benchmark run.</summary>
    internal static class Peers
    {
        public static string RepoRoot { get; } = FindRoot();

        public static string IoiModel => Path.Combine(RepoRoot, "src", "AtpFast", "Models", "ioi-gpt2", "model.onnx");

        public readonly record struct TorchResult(double MedianSeconds, double TokensPerSecond, string Version, string Blas);

        public static TorchResult? TorchForward(int batch, int seq, int threads, bool quick)
        {
            var json = RunJson([Path.Combine(RepoRoot, "tools", "bench_torch_forward.py"), "--model", IoiModel,
                "--batch", batch.ToString(CultureInfo.InvariantCulture), "--seq", seq.ToString(CultureInfo.InvariantCulture),
                "--threads", threads.ToString(CultureInfo.InvariantCulture), "--repeats", quick ? "5" : "50"]);
            return json is { } j ? new TorchResult(j.GetProperty("median_s").GetDouble(), j.GetProperty("tokens_per_s").GetDouble(),
                j.GetProperty("torch").GetString()!, j.GetProperty("blas").GetString()!) : null;
        }

        /// <summary>tools/bench_torch_attribution.py's JSON line, or null when torch is not available.</summary>
        public static JsonElement? TorchAttribution(string model, int pairs, int threads, bool quick)
        {
            var args = new List<string> { Path.Combine(RepoRoot, "tools", "bench_torch_attribution.py"), "--model", model,
                "--pairs", pairs.ToString(CultureInfo.InvariantCulture), "--threads", threads.ToString(CultureInfo.InvariantCulture) };
            if (quick) args.Add("--quick");
            return RunJson(args);
        }

        private static JsonElement? RunJson(IEnumerable<string> args)
        {
            var psi = new ProcessStartInfo("/usr/bin/python3", args) { RedirectStandardOutput = true, RedirectStandardError = true };
            try
            {
                using var p = Process.Start(psi)!;
                var stderr = p.StandardError.ReadToEndAsync();
                string output = p.StandardOutput.ReadToEnd();
                p.WaitForExit();
                if (p.ExitCode != 0)
                {
                    Console.Error.WriteLine("PyTorch peer failed: " + stderr.Result);
                    return null;
                }
                return JsonDocument.Parse(output.Trim().Split('\n')[^1]).RootElement.Clone();
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                Console.Error.WriteLine("PyTorch peer not run: " + e.Message);
                return null;
            }
        }

        private static string FindRoot()
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "AtpFast.sln"))) return d.FullName;
            for (var d = new DirectoryInfo(Directory.GetCurrentDirectory()); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "AtpFast.sln"))) return d.FullName;
            throw new InvalidOperationException("run the benchmarks from inside the AtpFast repository");
        }
    }
}
