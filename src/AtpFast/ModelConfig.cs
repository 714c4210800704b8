namespace AtpFast;

/// <summary>The architecture families the engine runs. They differ only in the facts recorded in
/// <see cref="ModelConfig"/>; the family itself is a label for summaries and defaults.</summary>
public enum ModelFamily
{
    /// <summary>GPT-2: learned positions, LayerNorm, GELU MLP, sequential residual, biases.</summary>
    Gpt2,
    /// <summary>GPT-NeoX / Pythia: (partial) rotary, LayerNorm, GELU MLP, usually parallel residual.</summary>
    GptNeoX,
    /// <summary>Llama: rotary, RMSNorm, SwiGLU MLP, no biases, optional grouped-query attention.</summary>
    Llama,
}

/// <summary>Normalisation applied before attention, before the MLP and before the unembedding.</summary>
public enum NormKind
{
    /// <summary>(x − mean)/sqrt(var + eps)·w + b, over the feature axis.</summary>
    LayerNorm,
    /// <summary>x/sqrt(mean(x²) + eps)·w (the bias slot of the slab stays zero).</summary>
    RmsNorm,
}

/// <summary>The MLP nonlinearity. For <see cref="SwiGlu"/> the MLP is W_out·(silu(W_gate·x)·(W_in·x)).</summary>
public enum MlpActivation
{
    /// <summary>x·Φ(x) with the error function.</summary>
    GeluErf,
    /// <summary>0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))).</summary>
    GeluTanh,
    /// <summary>max(x, 0).</summary>
    Relu,
    /// <summary>silu(gate)·up, gate = x·W_gate, up = x·W_in.</summary>
    SwiGlu,
}

/// <summary>How rotary position embeddings pair the dimensions of a head.</summary>
public enum RotaryStyle
{
    /// <summary>No rotary embedding (learned or no positions).</summary>
    None,
    /// <summary>GPT-NeoX / Hugging Face style: dimension i pairs with i + R/2 (R = rotated dims).</summary>
    HalfSplit,
    /// <summary>GPT-J / original Llama style: dimension 2i pairs with 2i + 1.</summary>
    Interleaved,
}

/// <summary>
/// Everything the engine needs to know about a decoder-only transformer. Produced by the ONNX importer
/// (or built in code for tests); immutable. Attention always scales scores by 1/√<see cref="HeadDim"/>
/// and is causal.
/// </summary>
/// <param name="Family">Architecture family (a label; the fields below decide the computation).</param>
/// <param name="VocabSize">Rows of the token embedding and of the unembedding.</param>
/// <param name="DModel">Residual-stream width d.</param>
/// <param name="Layers">Number of transformer blocks L.</param>
/// <param name="Heads">Query heads H.</param>
/// <param name="KvHeads">Key/value heads (== <paramref name="Heads"/> without grouped-query attention).</param>
/// <param name="HeadDim">Per-head width (H·HeadDim need not equal d).</param>
/// <param name="DMlp">MLP hidden width (neurons per layer).</param>
/// <param name="MaxPositions">Rows of the learned positional embedding; 0 when the model has none.</param>
/// <param name="Norm">LayerNorm or RMSNorm.</param>
/// <param name="NormEps">The epsilon inside the norm's square root.</param>
/// <param name="Activation">MLP nonlinearity.</param>
/// <param name="Rotary">Rotary pairing, or <see cref="RotaryStyle.None"/>.</param>
/// <param name="RotaryDims">Leading dimensions of each head that are rotated (even; 0 without rotary).</param>
/// <param name="RotaryBase">θ base of the rotary frequencies (frequency i = base^(−2i/RotaryDims)).</param>
/// <param name="ParallelResidual">x + attn(ln1 x) + mlp(ln2 x) instead of the sequential form.</param>
/// <param name="TiedEmbeddings">The unembedding is the token embedding (one tensor in the slab).</param>
public sealed record ModelConfig(
    ModelFamily Family,
    int VocabSize,
    int DModel,
    int Layers,
    int Heads,
    int KvHeads,
    int HeadDim,
    int DMlp,
    int MaxPositions,
    NormKind Norm,
    float NormEps,
    MlpActivation Activation,
    RotaryStyle Rotary,
    int RotaryDims,
    float RotaryBase,
    bool ParallelResidual,
    bool TiedEmbeddings)
{
    /// <summary>Query heads per key/value head (1 without grouped-query attention).</summary>
    public int GroupSize => Heads / KvHeads;

    /// <summary>Width of the concatenated query heads, H·HeadDim.</summary>
    public int QueryWidth => Heads * HeadDim;

    /// <summary>Width of the concatenated key (or value) heads, KvHeads·HeadDim.</summary>
    public int KvWidth => KvHeads * HeadDim;

    /// <summary>True when the MLP has a gate projection (SwiGLU).</summary>
    public bool GatedMlp => Activation == MlpActivation.SwiGlu;

    /// <summary>Longest sequence the model accepts (learned positions bound it; rotary does not).</summary>
    public int MaxSequenceLength => MaxPositions > 0 ? MaxPositions : int.MaxValue;

    /// <summary>Parameters outside the embeddings and unembedding (the N of the FLOP accounting).</summary>
    public long NonEmbeddingParameters
    {
        get
        {
            long d = DModel;
            long attn = d * QueryWidth + 2 * d * KvWidth + (long)QueryWidth * d;
            long mlp = (GatedMlp ? 3 : 2) * d * DMlp;
            return Layers * (attn + mlp);
        }
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first inconsistent field.</summary>
    public void Validate()
    {
        static void Require(bool ok, string message)
        {
            if (!ok) throw new ArgumentException("Invalid model configuration: " + message);
        }

        Require(VocabSize > 0, $"VocabSize must be positive (got {VocabSize})");
        Require(DModel > 0, $"DModel must be positive (got {DModel})");
        Require(Layers > 0, $"Layers must be positive (got {Layers})");
        Require(Heads > 0 && KvHeads > 0, $"Heads and KvHeads must be positive (got {Heads}, {KvHeads})");
        Require(Heads % KvHeads == 0, $"Heads ({Heads}) must be a multiple of KvHeads ({KvHeads})");
        Require(HeadDim > 0, $"HeadDim must be positive (got {HeadDim})");
        Require(DMlp > 0, $"DMlp must be positive (got {DMlp})");
        Require(MaxPositions >= 0, $"MaxPositions must not be negative (got {MaxPositions})");
        Require(NormEps > 0 && float.IsFinite(NormEps), $"NormEps must be positive (got {NormEps})");
        if (Rotary == RotaryStyle.None)
        {
            Require(RotaryDims == 0, "RotaryDims must be 0 without rotary embeddings");
        }
        else
        {
            Require(RotaryDims > 0 && RotaryDims % 2 == 0 && RotaryDims <= HeadDim,
                $"RotaryDims must be even and in 1..HeadDim (got {RotaryDims}, HeadDim {HeadDim})");
            Require(RotaryBase > 1 && float.IsFinite(RotaryBase), $"RotaryBase must be > 1 (got {RotaryBase})");
        }
    }

    /// <summary>The rotary angles' cosines and sines for positions 0..<paramref name="positions"/>−1, [position, RotaryDims/2]
    /// row-major. Every backend uses this one table (the reference implementations' arithmetic: fp32 inverse frequency
    /// times position), so that rotated values agree bit for bit.</summary>
    public (float[] Cos, float[] Sin) RotaryTable(int positions)
    {
        int half = RotaryDims / 2;
        var cos = new float[positions * half];
        var sin = new float[positions * half];
        for (int p = 0; p < positions; p++)
        {
            for (int i = 0; i < half; i++)
            {
                float invFreq = 1f / MathF.Pow(RotaryBase, 2f * i / RotaryDims);
                float angle = p * invFreq;
                cos[p * half + i] = MathF.Cos(angle);
                sin[p * half + i] = MathF.Sin(angle);
            }
        }
        return (cos, sin);
    }

    /// <summary>One line per fact, for <c>atpfast inspect</c> and logs.</summary>
    public string Describe()
    {
        string rotary = Rotary == RotaryStyle.None
            ? "none"
            : $"{Rotary} on {RotaryDims}/{HeadDim} dims, base {RotaryBase}";
        return string.Join(Environment.NewLine,
            $"family            {Family}",
            $"layers            {Layers}",
            $"d_model           {DModel}",
            $"heads             {Heads} (kv heads {KvHeads}, head dim {HeadDim})",
            $"mlp               {DMlp} neurons, {Activation}",
            $"norm              {Norm} (eps {NormEps:G})",
            $"positions         {(MaxPositions > 0 ? $"learned, {MaxPositions}" : "none learned")}",
            $"rotary            {rotary}",
            $"residual          {(ParallelResidual ? "parallel (attn + mlp from the same input)" : "sequential")}",
            $"unembedding       {(TiedEmbeddings ? "tied to the token embedding" : "untied")}",
            $"vocab             {VocabSize}",
            $"non-embedding N   {NonEmbeddingParameters:N0}");
    }
}
