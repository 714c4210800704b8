using AtpFast.Onnx;
using AtpFast.Onnx.Proto;
using FsCheck;
using FsCheck.Fluent;
using Google.Protobuf;

namespace AtpFast.Tests.Integration;

/// <summary>Bad ONNX input gives <see cref="OnnxImportException"/> with a message naming the problem — never a
/// crash, hang or a silently wrong model.</summary>
public sealed class ImportErrorTests
{
    private static readonly Lazy<byte[]> StoriesBytes = new(() => File.ReadAllBytes(ModelPaths.Stories260K));

    private static string ThirdParty(string folder, string file) => Path.Combine(ModelPaths.Shared, "models", "third-party", folder, file);

    [Fact]
    public void Truncated_file_is_rejected()
    {
        byte[] truncated = StoriesBytes.Value[..(StoriesBytes.Value.Length / 2)];
        var e = Assert.Throws<OnnxImportException>(() => OnnxImporter.Load(truncated));
        Assert.Contains("truncated or corrupt", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Random_bytes_are_rejected()
    {
        var bytes = new byte[4096];
        new Random(7).NextBytes(bytes);
        var e = Assert.Throws<OnnxImportException>(() => OnnxImporter.Load(bytes));
        Assert.Contains("ONNX", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Empty_file_is_rejected()
    {
        var e = Assert.Throws<OnnxImportException>(() => OnnxImporter.Load(Array.Empty<byte>()));
        Assert.Contains("empty", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_model_file_is_rejected_with_its_path()
    {
        var e = Assert.Throws<OnnxImportException>(() => OnnxImporter.Load("/nonexistent/dir/model.onnx"));
        Assert.Contains("/nonexistent/dir/model.onnx", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Graph_with_an_unknown_op_names_the_node_and_op()
    {
        var model = ModelProto.Parser.ParseFrom(StoriesBytes.Value);
        var node = model.Graph.Node.First(n => n.OpType == "Softmax");
        node.OpType = "FancySoftmax";
        var e = Assert.Throws<OnnxImportException>(() => OnnxImporter.Load(model.ToByteArray()));
        Assert.Contains(node.Name, e.Message, StringComparison.Ordinal);
        Assert.Contains("FancySoftmax", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_external_data_file_names_the_file()
    {
        // The fp16 Llama export keeps its tensors in model.onnx.data; load its graph from a folder without it.
        byte[] bytes = File.ReadAllBytes(ThirdParty("tiny-random-llama-fp16-ort", "model.onnx"));
        string empty = Directory.CreateTempSubdirectory("atpfast-noext").FullName;
        try
        {
            var file = OnnxModelFile.Parse(bytes, empty);
            var e = Assert.Throws<OnnxImportException>(() => file.ReadFloats("model.embed_tokens.weight"));
            Assert.Contains("model.onnx.data", e.Message, StringComparison.Ordinal);
            Assert.Contains("not found", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }

    [Fact]
    public void External_data_beyond_the_end_of_the_file_is_rejected()
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(ThirdParty("tiny-random-llama-fp16-ort", "model.onnx")));
        var tensor = model.Graph.Initializer.First(t => t.Name == "model.embed_tokens.weight");
        tensor.ExternalData.First(kv => kv.Key == "offset").Value = "999999999";
        var file = OnnxModelFile.Parse(model.ToByteArray(), Path.GetDirectoryName(ThirdParty("tiny-random-llama-fp16-ort", "model.onnx")));
        var e = Assert.Throws<OnnxImportException>(() => file.ReadFloats("model.embed_tokens.weight"));
        Assert.Contains("outside", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Fp16_external_data_is_read_exactly()
    {
        // Expected values from the `onnx` Python package (numpy_helper.to_array) on the same file.
        var file = OnnxModelFile.Parse(File.ReadAllBytes(ThirdParty("tiny-random-llama-fp16-ort", "model.onnx")),
            Path.GetDirectoryName(ThirdParty("tiny-random-llama-fp16-ort", "model.onnx")));
        float[] embed = file.ReadFloats("model.embed_tokens.weight");
        Assert.Equal(32000 * 16, embed.Length);
        Assert.Equal([0.005130767822265625f, 0.0255889892578125f, -0.0276336669921875f, -0.0202178955078125f], embed[..4]);
        Assert.Equal(-4.093452990055084, embed.Sum(x => (double)x), 9);
    }

    [Theory]
    [InlineData("tiny-random-gpt2-ort", "past.onnx", "com.microsoft.EmbedLayerNormalization")]
    [InlineData("tiny-random-llama-fp16-ort", "model.onnx", "SimplifiedLayerNormalization")]
    public void OnnxRuntime_optimised_graphs_are_rejected_naming_the_node_and_op(string folder, string file, string expected)
    {
        var e = Assert.Throws<OnnxImportException>(() => OnnxImporter.Load(ThirdParty(folder, file)));
        Assert.StartsWith("node '", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Randomly_truncated_or_mutated_models_load_or_fail_with_the_typed_exception()
    {
        byte[] original = StoriesBytes.Value;
        var mutation = from cut in Gen.Choose(0, original.Length)
                       from flips in Gen.Choose(0, 8)
                       from seed in Gen.Choose(0, int.MaxValue)
                       select (cut, flips, seed);
        Prop.ForAll(mutation.ToArbitrary(), m =>
        {
            var bytes = original[..m.cut];
            var rng = new Random(m.seed);
            for (int i = 0; i < m.flips && bytes.Length > 0; i++) bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));
            try
            {
                var imported = OnnxImporter.Load(bytes);
                return imported.Config.Layers > 0;
            }
            catch (OnnxImportException)
            {
                return true;
            }
        }).QuickCheckThrowOnFailure();
    }
}
