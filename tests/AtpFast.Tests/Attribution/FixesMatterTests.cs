using AtpFast.Attribution;
using AtpFast.Tasks;

namespace AtpFast.Tests.Attribution;

/// <summary>
/// Each of AtP*'s fixes matters, on models built by hand so that the failure they fix is certain: a saturated
/// attention row where plain AtP misses a key that exact patching finds and the QK fix recovers, and a neuron whose
/// direct and indirect effects cancel in the gradient so that AtP ranks it low and GradDrop ranks it high.
/// Every residual stream carries a large constant dimension so that the RMS norms are nearly constant scales.
/// </summary>
public sealed class FixesMatterTests
{
    private static void Set(ModelWeights w, TensorRef t, int row, int col, double value) => w.Span(t)[row * t.Cols + col] = (float)value;

    private static void Ones(ModelWeights w, TensorRef t) => w.Span(t).Fill(1f);

    /// <summary>
    /// One attention head. Tokens X, X', Y, Q write one-hot content dimensions 0–3 (plus 10 on dimension 7). The
    /// query of Q matches the key of X with score +20 and the key of X' with −20; Y and Q have zero keys. X's value
    /// writes the answer direction, Y's the wrong one. Clean [X, Y, Q]: the last row puts 1 − 4e-9 of its weight on X
    /// (saturated). Patching the key at position 0 with X' moves the weight to Y and Q: a large effect whose gradient
    /// at the clean run is ~e^−20.
    /// </summary>
    private static ModelWeights SaturatedAttentionModel()
    {
        var config = new ModelConfig(ModelFamily.Llama, 6, 8, 1, 1, 1, 4, 4, 0, NormKind.RmsNorm, 1e-6f,
            MlpActivation.SwiGlu, RotaryStyle.None, 0, 0, false, false);
        var w = new ModelWeights(config);
        for (int token = 0; token < 6; token++)
        {
            Set(w, w.TokenEmbedding, token, token, 1);
            Set(w, w.TokenEmbedding, token, 7, 10);
        }
        var l = w.Layers[0];
        Ones(w, l.AttnNormWeight);
        Ones(w, l.MlpNormWeight);
        Ones(w, w.FinalNormWeight);
        double c = 1 / Math.Sqrt(101.0 / 8); // the norm's scale of every token embedding
        double qk = Math.Sqrt(40 / (c * c)); // q·k/√4 = c²·qk²/2 = 20
        Set(w, l.Wq, 3, 0, qk);
        Set(w, l.Wk, 0, 0, qk);
        Set(w, l.Wk, 1, 0, -qk);
        Set(w, l.Wv, 0, 1, 1 / c);
        Set(w, l.Wv, 1, 1, 1 / c);
        Set(w, l.Wv, 2, 2, 1 / c);
        Set(w, l.Wo, 1, 4, 1);
        Set(w, l.Wo, 2, 5, 1);
        Set(w, w.Unembedding, 4, 4, 10);
        Set(w, w.Unembedding, 5, 5, 10);
        return w;
    }

    [Fact]
    public void QK_fix_recovers_a_key_that_plain_AtP_misses_in_a_saturated_attention_row()
    {
        var weights = SaturatedAttentionModel();
        PromptPair[] pairs = [new([0, 2, 3], [1, 2, 3], 4, 5)];
        var key = Node.Parse("L0.H0.k@0");
        double Score(AttributionMethod method) => AtpFast.Attribution.Attribution.Run(weights, pairs,
            new AttributionOptions { Method = method, Nodes = NodeTypes.Key }).Rows.Single(r => r.Node == key).SignedEstimate;

        double exact = Score(AttributionMethod.Exact), atp = Score(AttributionMethod.Atp), fixedScore = Score(AttributionMethod.AtpQk);
        Assert.True(Math.Abs(exact) > 3, $"the patch should matter: exact effect {exact}");
        Assert.True(Math.Abs(atp) < 0.1 * Math.Abs(exact), $"plain AtP should miss it: AtP {atp} vs exact {exact}");
        Assert.True(Math.Abs(fixedScore - exact) < 0.1 * Math.Abs(exact), $"AtP+QK should recover it: {fixedScore} vs exact {exact}");
        // The key is the top key node for exact patching and AtP+QK, not for plain AtP.
        var qkTop = AtpFast.Attribution.Attribution.Run(weights, pairs, new AttributionOptions { Method = AttributionMethod.AtpQk, Nodes = NodeTypes.Key }).Rows[0];
        Assert.Equal(key, qkTop.Node);
    }

    /// <summary>
    /// Two MLP layers (ReLU), no attention, one token. The clean token switches on four layer-0 neurons (the noise
    /// token none). Neuron 0 writes 2 to the answer dimension (direct) and 1 to a carrier dimension; layer-1 neuron 0
    /// reads the carrier (bias −0.75, so it is active with value 0.25 on the clean run) and writes −2 to the answer
    /// dimension: in the gradient the direct +2 and indirect −2 cancel, but patching neuron 0 changes the metric by
    /// about −1.5 (the indirect path switches off at 0.25, not at 1). Neurons 1–3 of layer 0 write 0.4, 0.6, 0.8
    /// directly (decoys whose AtP is right).
    /// </summary>
    private static ModelWeights CancellationModel()
    {
        var config = new ModelConfig(ModelFamily.Gpt2, 4, 8, 2, 1, 1, 4, 4, 0, NormKind.RmsNorm, 1e-6f,
            MlpActivation.Relu, RotaryStyle.None, 0, 0, false, false);
        var w = new ModelWeights(config);
        Set(w, w.TokenEmbedding, 0, 0, 1);
        Set(w, w.TokenEmbedding, 1, 1, 1);
        for (int token = 0; token < 4; token++) Set(w, w.TokenEmbedding, token, 7, 100);
        foreach (var l in w.Layers)
        {
            Ones(w, l.AttnNormWeight);
            Ones(w, l.MlpNormWeight);
        }
        Ones(w, w.FinalNormWeight);
        double c = 1 / Math.Sqrt(10001.0 / 8);
        var l0 = w.Layers[0];
        for (int j = 0; j < 4; j++) Set(w, l0.WIn, 0, j, 1 / c);
        Set(w, l0.WOut, 0, 4, 2);
        Set(w, l0.WOut, 0, 2, 1);
        Set(w, l0.WOut, 1, 4, 0.4);
        Set(w, l0.WOut, 2, 4, 0.6);
        Set(w, l0.WOut, 3, 4, 0.8);
        var l1 = w.Layers[1];
        Set(w, l1.WIn, 2, 0, 1 / c);
        w.Span(l1.BIn)[0] = -0.75f;
        Set(w, l1.WOut, 0, 4, -2);
        Set(w, w.Unembedding, 2, 4, 1 / c);
        return w;
    }

    [Fact]
    public void GradDrop_ranks_high_a_neuron_whose_direct_and_indirect_effects_cancel_in_the_gradient()
    {
        var weights = CancellationModel();
        PromptPair[] pairs = [new([0], [1], 2, 3)];
        var neuron = Node.Parse("L0.mlp.n0@0");
        AttributionRow Row(AttributionMethod method) => AtpFast.Attribution.Attribution.Run(weights, pairs,
            new AttributionOptions { Method = method, Nodes = NodeTypes.Neuron }).Rows.Single(r => r.Node == neuron);

        var exact = Row(AttributionMethod.Exact);
        var atp = Row(AttributionMethod.Atp);
        var gradDrop = Row(AttributionMethod.AtpGd);
        Assert.True(Math.Abs(exact.SignedEstimate) > 1, $"the neuron matters: exact effect {exact.SignedEstimate}");
        Assert.Equal(1, exact.Rank);
        Assert.True(Math.Abs(atp.SignedEstimate) < 0.05 * Math.Abs(exact.SignedEstimate), $"AtP cancels: {atp.SignedEstimate}");
        Assert.True(atp.Rank >= 5, $"AtP should rank it below the decoys and the layer-1 neuron (rank {atp.Rank})");
        Assert.Equal(1, gradDrop.Rank);
        Assert.Equal(1, Row(AttributionMethod.AtpStar).Rank);
    }
}
