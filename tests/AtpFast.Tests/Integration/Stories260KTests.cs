using System.Text.Json;
using AtpFast.Cpu;
using AtpFast.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AtpFast.Tests.Integration;

/// <summary>stories260K (Llama family, GQA, tied): recovered architecture, ONNX Runtime parity, the PyTorch
/// reference logits and the exact greedy continuation from reference.json.</summary>
public sealed class Stories260KTests
{
    private static readonly Lazy<ImportedModel> Model = new(() => OnnxImporter.Load(ModelPaths.Stories260K));
    private static readonly Lazy<JsonElement> Reference = new(() => JsonDocument.Parse(File.ReadAllText(ModelPaths.Stories260KReference)).RootElement);

    [Fact]
    public void Architecture_is_recovered_from_the_graph()
    {
        var c = Model.Value.Config;
        var r = Reference.Value.GetProperty("config");
        Assert.Equal(ModelFamily.Llama, c.Family);
        Assert.Equal(r.GetProperty("dim").GetInt32(), c.DModel);
        Assert.Equal(r.GetProperty("nl").GetInt32(), c.Layers);
        Assert.Equal(r.GetProperty("nh").GetInt32(), c.Heads);
        Assert.Equal(r.GetProperty("nkv").GetInt32(), c.KvHeads);
        Assert.Equal(r.GetProperty("hid").GetInt32(), c.DMlp);
        Assert.Equal(r.GetProperty("vocab").GetInt32(), c.VocabSize);
        Assert.Equal(r.GetProperty("shared").GetBoolean(), c.TiedEmbeddings);
        Assert.Equal(NormKind.RmsNorm, c.Norm);
        Assert.Equal(MlpActivation.SwiGlu, c.Activation);
        Assert.Equal(RotaryStyle.HalfSplit, c.Rotary);
        Assert.Equal(c.HeadDim, c.RotaryDims);
        Assert.False(c.ParallelResidual);
        Assert.Equal(0, c.MaxPositions);
    }

    [Fact]
    public void Greedy_continuation_from_BOS_reproduces_the_reference_exactly()
    {
        int[] expected = Reference.Value.GetProperty("greedy_from_bos").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        using var backend = new CpuBackend(Model.Value.Weights);
        int vocab = Model.Value.Config.VocabSize;
        var tokens = new List<int> { expected[0] };
        while (tokens.Count < expected.Length)
        {
            var logits = new float[tokens.Count * vocab];
            backend.Forward(tokens.ToArray(), 1, tokens.Count, logits);
            tokens.Add(System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits.AsSpan((tokens.Count - 1) * vocab, vocab)));
        }
        Assert.Equal(expected, tokens);
    }

    [Fact]
    public void Probe_logits_match_the_PyTorch_reference()
    {
        var ids = Reference.Value.GetProperty("probe_input_ids").EnumerateArray()
            .Select(row => row.EnumerateArray().Select(e => e.GetInt32()).ToArray()).ToArray();
        int batch = ids.Length, seq = ids[0].Length, vocab = Model.Value.Config.VocabSize;
        using var backend = new CpuBackend(Model.Value.Weights);
        var logits = new float[batch * seq * vocab];
        backend.Forward(ids.SelectMany(x => x).ToArray(), batch, seq, logits);
        foreach (var (key, position) in new[] { ("probe_logits_last", seq - 1), ("probe_logits_pos5", 5) })
        {
            var expected = Reference.Value.GetProperty(key).EnumerateArray().ToArray();
            for (int b = 0; b < batch; b++)
            {
                var row = expected[b].EnumerateArray().Select(e => e.GetSingle()).ToArray();
                for (int v = 0; v < vocab; v++)
                    Assert.True(Math.Abs(row[v] - logits[(b * seq + position) * vocab + v]) <= 1e-4,
                        $"{key}[{b}][{v}]: torch {row[v]}, ours {logits[(b * seq + position) * vocab + v]}");
            }
        }
    }

    [Fact]
    public void Logits_match_ONNX_Runtime_on_random_ids()
    {
        var rng = new Random(260);
        int batch = 2, seq = 13, vocab = Model.Value.Config.VocabSize;
        int[] ids = Enumerable.Range(0, batch * seq).Select(_ => rng.Next(vocab)).ToArray();
        float[] ort = OrtOracle.Logits(ModelPaths.Stories260K, ids, batch, seq);
        using var backend = new CpuBackend(Model.Value.Weights);
        var ours = new float[batch * seq * vocab];
        backend.Forward(ids, batch, seq, ours);
        OrtOracle.AssertClose(ort, ours);
    }
}

/// <summary>ONNX Runtime executing the same file in-process: the independent reference for logits.</summary>
internal static class OrtOracle
{
    public static float[] Logits(string modelPath, int[] ids, int batch, int seq)
    {
        using var session = new InferenceSession(modelPath);
        var input = new DenseTensor<long>(ids.Select(i => (long)i).ToArray(), [batch, seq]);
        var inputs = new List<NamedOnnxValue> { NamedOnnxValue.CreateFromTensor("input_ids", input) };
        using var results = session.Run(inputs);
        return results.First(r => r.Name == "logits").AsTensor<float>().ToArray();
    }

    /// <summary>max|Δ| ≤ 1e-4·max|logit| (the foundation issue's parity bound).</summary>
    public static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        float scale = expected.Max(MathF.Abs);
        float worst = 0;
        int worstAt = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            float diff = MathF.Abs(expected[i] - actual[i]);
            if (diff > worst) { worst = diff; worstAt = i; }
        }
        Assert.True(worst <= 1e-4f * scale,
            $"max |Δ| = {worst} at {worstAt} (ORT {expected[Math.Max(worstAt, 0)]}, ours {actual[Math.Max(worstAt, 0)]}) exceeds 1e-4·max|logit| = {1e-4f * scale}");
    }
}
