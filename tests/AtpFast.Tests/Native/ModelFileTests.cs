using System.Globalization;
using System.Text;
using AtpFast.Attribution;
using AtpFast.Cpu;
using AtpFast.Onnx;
using AtpFast.Tasks;
using AtpFast.Tests.Integration;

namespace AtpFast.Tests.Native;

/// <summary>The NativeAOT library on models loaded from a path and from a memory buffer — the IOI GPT-2 model and the
/// Llama-family stories260K (rotary, RMSNorm, SwiGLU, grouped-query attention) — with several methods: every row it
/// returns is bit-identical to the C# API's.</summary>
[Collection(NativeCollection.Name)]
public sealed class ModelFileTests
{
    private static readonly Lazy<string> Program = new(
        () => NativeBuild.CompileTestProgram(NativeBuild.TestSource("run_ids.c"), NativeBuild.AotLibraryDir),
        LazyThreadSafetyMode.ExecutionAndPublication);

    public static TheoryData<string, string, int, int, int> Runs => new()
    {
        // model, load route, method (ATP_METHOD_*), node types (ATP_NODE_* flags), verify top
        { "ioi", "file", 4, 0x3F, 5 },             // AtP*, default nodes
        { "ioi", "buffer", 0, 0x08 | 0x20, 0 },    // exact patching of z and resid_pre
        { "stories260K", "file", 4, 0xFF, 5 },     // AtP* on every node type
        { "stories260K", "buffer", 2, 0x03, 3 },   // AtP+QK on queries and keys
    };

    [Theory]
    [MemberData(nameof(Runs))]
    public void Rows_from_a_model_file_are_bit_identical_to_the_CSharp_API(string model, string route, int method, int nodeTypes, int verifyTop)
    {
        string path = model == "ioi" ? NativeBuild.IoiModel : ModelPaths.Stories260K;
        if (!File.Exists(path)) Assert.Skip($"{path} is missing (../shared/models is not beside the repository)");
        var imported = OnnxImporter.Load(path);
        var (clean, noise, answer, wrong) = model == "ioi"
            ? (DemoModel.Tokenizer().Encode(DemoReference.Clean), DemoModel.Tokenizer().Encode(DemoReference.Noise), 42, 52)
            : (new[] { 1, 403, 407, 261, 378, 285, 343, 265, 400 }, new[] { 1, 403, 290, 261, 378, 301, 343, 265, 400 }, 300, 301);
        const int top = 40;

        var options = new AttributionOptions { Method = (AttributionMethod)method, Nodes = (NodeTypes)nodeTypes, VerifyTop = verifyTop };
        AttributionResult result;
        using (var backend = new CpuBackend(imported.Weights, Precision.Float32, threads: 0))
            result = AtpFast.Attribution.Attribution.Run(backend, [new PromptPair(clean, noise, answer, wrong)], options);
        var expected = new StringBuilder();
        expected.Append(CultureInfo.InvariantCulture,
            $"model family {(int)imported.Config.Family} layers {imported.Config.Layers} heads {imported.Config.Heads} kv_heads {imported.Config.KvHeads} " +
            $"d_model {imported.Config.DModel} vocab {imported.Config.VocabSize} tokenizer {(route == "file" ? 1 : 0)} sha256 {imported.Sha256}\n");
        expected.Append(CultureInfo.InvariantCulture, $"rows {result.Rows.Count}\n");
        foreach (var row in result.Rows.Take(top))
        {
            expected.Append(CultureInfo.InvariantCulture, $"{row.Rank} {row.Node.Name} {G17(row.Estimate)} {G17(row.SignedEstimate)} " +
                $"{(row.VerifiedEffect is { } v ? G17(v) : "-")}\n");
        }

        string args = $"\"{path}\" {route} {method} {nodeTypes} {verifyTop} {string.Join(',', clean)} {string.Join(',', noise)} {answer} {wrong} {top}";
        var run = TestProcess.Run(Program.Value, args, NativeBuild.Work, TimeSpan.FromMinutes(3));
        Assert.True(run.ExitCode == 0, $"run_ids failed ({run.ExitCode}): {run.Stderr}");
        Assert.Equal(expected.ToString(), run.Stdout);
    }

    private static string G17(double value) => DemoReference.G(value, 17);
}
