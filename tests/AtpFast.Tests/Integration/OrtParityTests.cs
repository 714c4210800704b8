using System.Text.Json;
using AtpFast.Cpu;
using AtpFast.Onnx;

namespace AtpFast.Tests.Integration;

/// <summary>For each torch-exported family variant: the architecture recovered from the graph equals the facts
/// the export script recorded (config.json, never read by the importer), and our CPU forward matches ONNX Runtime
/// executing the same file to max|Δ| ≤ 1e-4·max|logit|.</summary>
public sealed class OrtParityTests
{
    public static TheoryData<string> Models => new()
    {
        "src/AtpFast/Models/ioi-gpt2/model.onnx",
        "tests/models/neox-tiny/model.onnx",
        "tests/models/llama-interleaved/model.onnx",
    };

    private static string Full(string relative) => Path.Combine(ModelPaths.RepoRoot, relative);

    [Theory]
    [MemberData(nameof(Models))]
    public void Recovered_architecture_equals_the_exported_facts(string model)
    {
        var c = OnnxImporter.Load(Full(model)).Config;
        var facts = JsonDocument.Parse(File.ReadAllText(Path.Combine(Path.GetDirectoryName(Full(model))!, "config.json"))).RootElement;
        Assert.Equal(facts.GetProperty("vocab").GetInt32(), c.VocabSize);
        Assert.Equal(facts.GetProperty("d_model").GetInt32(), c.DModel);
        Assert.Equal(facts.GetProperty("layers").GetInt32(), c.Layers);
        Assert.Equal(facts.GetProperty("heads").GetInt32(), c.Heads);
        Assert.Equal(facts.GetProperty("d_mlp").GetInt32(), c.DMlp);
        Assert.Equal(facts.GetProperty("tied").GetBoolean(), c.TiedEmbeddings);
        Assert.Equal(facts.GetProperty("norm").GetString() == "rmsnorm" ? NormKind.RmsNorm : NormKind.LayerNorm, c.Norm);
        string activation = facts.GetProperty("activation").GetString()!;
        Assert.Equal(activation switch
        {
            "gelu_tanh" => MlpActivation.GeluTanh,
            "gelu_erf" => MlpActivation.GeluErf,
            "swiglu" => MlpActivation.SwiGlu,
            _ => throw new InvalidOperationException(activation),
        }, c.Activation);
        if (facts.TryGetProperty("kv_heads", out var kv)) Assert.Equal(kv.GetInt32(), c.KvHeads);
        if (facts.TryGetProperty("parallel_residual", out var parallel)) Assert.Equal(parallel.GetBoolean(), c.ParallelResidual);
        if (facts.TryGetProperty("rotary", out var rotary))
        {
            Assert.Equal(rotary.GetString() == "interleaved" ? RotaryStyle.Interleaved : RotaryStyle.HalfSplit, c.Rotary);
            Assert.Equal(facts.GetProperty("rotary_dims").GetInt32(), c.RotaryDims);
            Assert.Equal(facts.GetProperty("rotary_base").GetSingle(), c.RotaryBase);
        }
        else
        {
            Assert.Equal(RotaryStyle.None, c.Rotary);
            Assert.Equal(facts.GetProperty("positions").GetInt32(), c.MaxPositions);
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Logits_match_ONNX_Runtime(string model)
    {
        var imported = OnnxImporter.Load(Full(model));
        var rng = new Random(model.Length);
        int batch = 3, seq = 11, vocab = imported.Config.VocabSize;
        int[] ids = Enumerable.Range(0, batch * seq).Select(_ => rng.Next(vocab)).ToArray();
        using var backend = new CpuBackend(imported.Weights);
        var ours = new float[batch * seq * vocab];
        backend.Forward(ids, batch, seq, ours);
        OrtOracle.AssertClose(OrtOracle.Logits(Full(model), ids, batch, seq), ours);
    }
}
