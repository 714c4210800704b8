using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using AtpFast.Kernels;
using AtpFast.Tests.Integration;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime.Cuda;

namespace AtpFast.Tests.Gpu;

/// <summary>
/// Without a GPU: every kernel compiles with ILGPU's PTX backend for sm_80 and sm_90 (ISA 7.8, what CUDA 11.8's ptxas
/// reads, and ISA 8.8, what current drivers JIT), and the ISA 7.8 PTX assembles with a real ptxas for both
/// architectures, whose resource use (registers, spills, shared memory, stack) is written to
/// <c>perf/results/ptxas-kernels.md</c>: the hot kernels must not spill.
/// </summary>
public sealed partial class KernelPtxTests(ITestOutputHelper output)
{
    private static readonly string[] HotKernels =
        ["Gemm", "GemmTiled", "GemmTensorCore.Tf32", "GemmTensorCore.Bf16", "Attention", "AttentionBackward.Rows", "AttentionBackward.Keys",
         "Norm", "NormBackward", "AttributionProducts", "QkFix.Build", "QkFix.ApplyRows", "QkFix.ApplyKeys", "Unembed"];

    public static TheoryData<string, string> Targets() => new() { { "sm_80", "7.8" }, { "sm_90", "7.8" }, { "sm_80", "8.8" }, { "sm_90", "8.8" } };

    private static (CudaArchitecture, CudaInstructionSet) Parse(string arch, string isa) =>
        (arch == "sm_80" ? CudaArchitecture.SM_80 : CudaArchitecture.SM_90, isa == "7.8" ? CudaInstructionSet.ISA_78 : CudaInstructionSet.ISA_88);

    /// <summary>The PTX of every kernel for one target.</summary>
    private static Dictionary<string, string> Compile(string arch, string isa)
    {
        using var context = Context.Create(b => b.Default().EnableAlgorithms());
        var (architecture, instructionSet) = Parse(arch, isa);
        var backend = new PTXBackend(context, architecture, instructionSet, null!);
        var result = new Dictionary<string, string>();
        foreach (var kernel in KernelCatalog.All)
        {
            var entry = kernel.ExplicitlyGrouped
                ? EntryPointDescription.FromExplicitlyGroupedKernel(kernel.Method)
                : EntryPointDescription.FromImplicitlyGroupedKernel(kernel.Method);
            try
            {
                result[kernel.Name] = ((PTXCompiledKernel)backend.Compile(entry, default)).PTXAssembly;
            }
            catch (Exception e)
            {
                context.ClearCache(ClearCacheMode.Everything);
                Assert.Fail($"{kernel.Name} does not compile for {arch} (ISA {isa}): {e.GetType().Name}: {e.Message}");
            }
        }
        return result;
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_kernel_compiles_to_ptx(string arch, string isa)
    {
        var ptx = Compile(arch, isa);
        Assert.Equal(KernelCatalog.All.Count, ptx.Count);
        foreach (var (name, text) in ptx)
        {
            Assert.Contains(".entry", text, StringComparison.Ordinal);
            Assert.Contains($".version {isa}", text, StringComparison.Ordinal);
        }
        Assert.Contains("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32", ptx["GemmTensorCore.Tf32"], StringComparison.Ordinal);
        Assert.Contains("cvt.rna.tf32.f32", ptx["GemmTensorCore.Tf32"], StringComparison.Ordinal);
        Assert.Contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", ptx["GemmTensorCore.Bf16"], StringComparison.Ordinal);
        Assert.Contains("cvt.rn.bf16x2.f32", ptx["GemmTensorCore.Bf16"], StringComparison.Ordinal);
        output.WriteLine($"{arch} ISA {isa}: {ptx.Count} kernels, {ptx.Values.Sum(t => t.Length):N0} characters of PTX");
    }

    /// <summary>ptxas from Debian's nvidia-cuda-toolkit (CUDA 11.8), unpacked by .ci/run without installing it.</summary>
    private static string? FindPtxas()
    {
        if (Environment.GetEnvironmentVariable("ATPFAST_PTXAS") is { Length: > 0 } env && File.Exists(env)) return env;
        string cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        string candidate = Path.Combine(cache, "atpfast", "cuda-toolkit", "usr", "bin", "ptxas");
        return File.Exists(candidate) ? candidate : null;
    }

    [Fact]
    public void Every_kernel_assembles_with_ptxas_and_the_hot_kernels_do_not_spill()
    {
        string? ptxas = FindPtxas();
        if (ptxas is null)
            Assert.Skip("ptxas not found: .ci/run unpacks Debian's nvidia-cuda-toolkit into ~/.cache/atpfast/cuda-toolkit (or set ATPFAST_PTXAS)");
        var table = new StringBuilder();
        var rows = new Dictionary<string, List<string>>();
        string dir = Path.Combine(Path.GetTempPath(), "atpfast-ptx-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            foreach (string arch in new[] { "sm_80", "sm_90" })
            {
                foreach (var (name, text) in Compile(arch, "7.8"))
                {
                    string file = Path.Combine(dir, $"{name}.{arch}.ptx");
                    File.WriteAllText(file, text);
                    var (exit, log) = Run(ptxas, $"-v -arch={arch} \"{file}\" -o /dev/null");
                    Assert.True(exit == 0, $"ptxas failed on {name} for {arch}:\n{log}");
                    var r = Resources(log);
                    if (HotKernels.Contains(name))
                        Assert.True(r.SpillStores == 0 && r.SpillLoads == 0, $"{name} spills on {arch}: {r.SpillStores} bytes stored, {r.SpillLoads} loaded");
                    (rows.TryGetValue(name, out var list) ? list : rows[name] = []).Add(
                        $"{r.Registers} | {r.SpillStores + r.SpillLoads} | {r.SharedBytes} | {r.StackBytes}");
                }
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
        var (_, version) = Run(ptxas, "--version");
        table.AppendLine("# ptxas resource use of every kernel");
        table.AppendLine();
        table.AppendLine(CultureInfo.InvariantCulture, $"- assembler: {version.Split('\n').FirstOrDefault(l => l.Contains("release", StringComparison.Ordinal))?.Trim()} (Debian nvidia-cuda-toolkit, not installed: unpacked by .ci/run)");
        table.AppendLine("- input: ILGPU 1.5.3 PTX, ISA 7.8 (the body is the same as the ISA 8.x a current driver JITs); `ptxas -v -arch=sm_80|sm_90`");
        table.AppendLine("- written by the test `KernelPtxTests.Every_kernel_assembles_with_ptxas_and_the_hot_kernels_do_not_spill`; spills are bytes stored + loaded");
        table.AppendLine();
        table.AppendLine("| kernel | sm_80 registers | spills | shared bytes | stack bytes | sm_90 registers | spills | shared bytes | stack bytes |");
        table.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var (name, cells) in rows) table.AppendLine($"| {name}{(HotKernels.Contains(name) ? " (hot)" : "")} | {string.Join(" | ", cells)} |");
        string path = Path.Combine(ModelPaths.RepoRoot, "perf", "results", "ptxas-kernels.md");
        File.WriteAllText(path, table.ToString());
        output.WriteLine(table.ToString());
    }

    private static (int Exit, string Output) Run(string file, string arguments)
    {
        var result = TestProcess.Run(file, arguments, null, TimeSpan.FromMinutes(5));
        return (result.ExitCode, result.Stdout + result.Stderr);
    }

    private readonly record struct Usage(int Registers, int SpillStores, int SpillLoads, int SharedBytes, int StackBytes);

    /// <summary>Parses ptxas -v for the kernel's entry (the first function block; ILGPU emits one entry per file).</summary>
    private static Usage Resources(string log)
    {
        int Match(Regex r) => r.Match(log) is { Success: true } m ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        return new Usage(Match(RegistersPattern()), Match(SpillStoresPattern()), Match(SpillLoadsPattern()), Match(SharedPattern()), Match(StackPattern()));
    }

    [GeneratedRegex(@"Used (\d+) registers")]
    private static partial Regex RegistersPattern();

    [GeneratedRegex(@"(\d+) bytes spill stores")]
    private static partial Regex SpillStoresPattern();

    [GeneratedRegex(@"(\d+) bytes spill loads")]
    private static partial Regex SpillLoadsPattern();

    [GeneratedRegex(@"(\d+) bytes smem")]
    private static partial Regex SharedPattern();

    [GeneratedRegex(@"(\d+) bytes stack frame")]
    private static partial Regex StackPattern();
}
