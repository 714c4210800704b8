namespace AtpFast.Tests.Core;

/// <summary>The slab layout every backend relies on: aligned, non-overlapping tensors; tied unembedding shared.</summary>
public sealed class ModelWeightsTests
{
    internal static ModelConfig SmallLlama(bool tied) => new(
        ModelFamily.Llama, VocabSize: 37, DModel: 24, Layers: 3, Heads: 4, KvHeads: 2, HeadDim: 6, DMlp: 40,
        MaxPositions: 0, NormKind.RmsNorm, 1e-5f, MlpActivation.SwiGlu, RotaryStyle.HalfSplit, RotaryDims: 4,
        RotaryBase: 10000f, ParallelResidual: false, TiedEmbeddings: tied);

    [Fact]
    public void Tensors_are_aligned_and_do_not_overlap()
    {
        var w = new ModelWeights(SmallLlama(tied: false));
        var sorted = w.Tensors.OrderBy(t => t.Offset).ToList();
        for (int i = 0; i < sorted.Count; i++)
        {
            Assert.Equal(0, sorted[i].Offset % 16);
            if (i > 0) Assert.True(sorted[i - 1].Offset + sorted[i - 1].Length <= sorted[i].Offset, sorted[i].Name);
        }
        Assert.True(sorted[^1].Offset + sorted[^1].Length <= w.Slab.Length);
        Assert.Equal(w.Tensors.Count, w.Tensors.Select(t => t.Name).Distinct().Count());
    }

    [Fact]
    public void Tied_unembedding_shares_the_token_embedding()
    {
        var tied = new ModelWeights(SmallLlama(tied: true));
        Assert.Equal(tied.TokenEmbedding.Offset, tied.Unembedding.Offset);
        var untied = new ModelWeights(SmallLlama(tied: false));
        Assert.NotEqual(untied.TokenEmbedding.Offset, untied.Unembedding.Offset);
        Assert.Equal(untied.ParameterCount - 37 * 24, tied.ParameterCount);
    }

    [Fact]
    public void Gate_exists_only_for_SwiGlu()
    {
        var llama = new ModelWeights(SmallLlama(tied: true));
        Assert.Equal(24 * 40, llama.Layers[0].WGate.Length);
        var gpt2 = new ModelWeights(SmallLlama(tied: true) with
        {
            Activation = MlpActivation.GeluTanh, Norm = NormKind.LayerNorm, Rotary = RotaryStyle.None, RotaryDims = 0,
            MaxPositions = 16,
        });
        Assert.Equal(0, gpt2.Layers[0].WGate.Length);
        Assert.Equal(16 * 24, gpt2.PositionEmbedding.Length);
    }

    [Theory]
    [InlineData(4, 3, "multiple of KvHeads")]
    [InlineData(4, 2, "RotaryDims")]
    public void Inconsistent_configs_are_rejected_with_the_field_named(int heads, int kvHeads, string expected)
    {
        var c = SmallLlama(tied: true) with { Heads = heads, KvHeads = kvHeads };
        if (expected == "RotaryDims") c = c with { RotaryDims = 5 };
        var e = Assert.Throws<ArgumentException>(() => new ModelWeights(c));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
