namespace AtpFast;

/// <summary>A tensor inside the <see cref="ModelWeights"/> slab: a name, an element offset and a
/// row-major shape.</summary>
/// <param name="Name">Canonical name, e.g. <c>blocks.3.attn.wq</c>.</param>
/// <param name="Offset">First element in <see cref="ModelWeights.Slab"/>.</param>
/// <param name="Rows">Rows of the row-major matrix (1 for vectors).</param>
/// <param name="Cols">Columns (the contiguous axis).</param>
public readonly record struct TensorRef(string Name, int Offset, int Rows, int Cols)
{
    /// <summary>Number of elements (Rows·Cols).</summary>
    public int Length => Rows * Cols;

    /// <summary>Shape as text, "[rows, cols]" or "[n]".</summary>
    public string ShapeText => Rows == 1 ? $"[{Cols}]" : $"[{Rows}, {Cols}]";
}

/// <summary>
/// The tensors of one transformer block. Linear weights are stored <c>[in, out]</c> row-major
/// (y = x·W + b). Query columns are grouped by head: head h owns columns [h·HeadDim, (h+1)·HeadDim);
/// keys and values likewise by key/value head. Within a head, rotary pairs follow
/// <see cref="ModelConfig.Rotary"/>. Biases a model lacks stay zero in the slab.
/// </summary>
public sealed class LayerWeights
{
    internal LayerWeights(Func<string, int, int, TensorRef> add, ModelConfig c, int layer)
    {
        string p = $"blocks.{layer}.";
        AttnNormWeight = add(p + "ln1.weight", 1, c.DModel);
        AttnNormBias = add(p + "ln1.bias", 1, c.DModel);
        Wq = add(p + "attn.wq", c.DModel, c.QueryWidth);
        Bq = add(p + "attn.bq", 1, c.QueryWidth);
        Wk = add(p + "attn.wk", c.DModel, c.KvWidth);
        Bk = add(p + "attn.bk", 1, c.KvWidth);
        Wv = add(p + "attn.wv", c.DModel, c.KvWidth);
        Bv = add(p + "attn.bv", 1, c.KvWidth);
        Wo = add(p + "attn.wo", c.QueryWidth, c.DModel);
        Bo = add(p + "attn.bo", 1, c.DModel);
        MlpNormWeight = add(p + "ln2.weight", 1, c.DModel);
        MlpNormBias = add(p + "ln2.bias", 1, c.DModel);
        WIn = add(p + "mlp.w_in", c.DModel, c.DMlp);
        BIn = add(p + "mlp.b_in", 1, c.DMlp);
        WGate = c.GatedMlp ? add(p + "mlp.w_gate", c.DModel, c.DMlp) : default;
        BGate = c.GatedMlp ? add(p + "mlp.b_gate", 1, c.DMlp) : default;
        WOut = add(p + "mlp.w_out", c.DMlp, c.DModel);
        BOut = add(p + "mlp.b_out", 1, c.DModel);
    }

    /// <summary>Norm before attention: weight [d], bias [d] (zero for RMSNorm).</summary>
    public TensorRef AttnNormWeight { get; }
    /// <inheritdoc cref="AttnNormWeight"/>
    public TensorRef AttnNormBias { get; }
    /// <summary>Query projection [d, H·HeadDim] and bias.</summary>
    public TensorRef Wq { get; }
    /// <inheritdoc cref="Wq"/>
    public TensorRef Bq { get; }
    /// <summary>Key projection [d, KvHeads·HeadDim] and bias.</summary>
    public TensorRef Wk { get; }
    /// <inheritdoc cref="Wk"/>
    public TensorRef Bk { get; }
    /// <summary>Value projection [d, KvHeads·HeadDim] and bias.</summary>
    public TensorRef Wv { get; }
    /// <inheritdoc cref="Wv"/>
    public TensorRef Bv { get; }
    /// <summary>Output projection [H·HeadDim, d] and bias.</summary>
    public TensorRef Wo { get; }
    /// <inheritdoc cref="Wo"/>
    public TensorRef Bo { get; }
    /// <summary>Norm before the MLP (GPT-NeoX: post_attention_layernorm): weight [d], bias [d].</summary>
    public TensorRef MlpNormWeight { get; }
    /// <inheritdoc cref="MlpNormWeight"/>
    public TensorRef MlpNormBias { get; }
    /// <summary>MLP input ("up") projection [d, DMlp] and bias.</summary>
    public TensorRef WIn { get; }
    /// <inheritdoc cref="WIn"/>
    public TensorRef BIn { get; }
    /// <summary>SwiGLU gate projection [d, DMlp] and bias; empty (Length 0) without a gate.</summary>
    public TensorRef WGate { get; }
    /// <inheritdoc cref="WGate"/>
    public TensorRef BGate { get; }
    /// <summary>MLP output ("down") projection [DMlp, d] and bias.</summary>
    public TensorRef WOut { get; }
    /// <inheritdoc cref="WOut"/>
    public TensorRef BOut { get; }
}

/// <summary>
/// All weights of a model in one contiguous fp32 slab (the importer converts fp16/bf16), with the offset
/// of every tensor computed from the <see cref="ModelConfig"/> alone, so that every backend agrees on
/// the layout. Tensor offsets are multiples of 16 elements (64 bytes).
/// </summary>
public sealed class ModelWeights
{
    private const int Alignment = 16;
    private readonly List<TensorRef> _tensors = [];

    /// <summary>Allocates a zero-filled slab for <paramref name="config"/>.</summary>
    public ModelWeights(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        long next = 0;
        TensorRef Add(string name, int rows, int cols)
        {
            var t = new TensorRef(name, checked((int)next), rows, cols);
            next += ((long)rows * cols + Alignment - 1) / Alignment * Alignment;
            if (next > Array.MaxLength)
                throw new NotSupportedException(
                    $"Model too large for one fp32 slab ({next:N0} elements > {Array.MaxLength:N0}).");
            _tensors.Add(t);
            return t;
        }

        TokenEmbedding = Add("embed.tokens", config.VocabSize, config.DModel);
        PositionEmbedding = config.MaxPositions > 0 ? Add("embed.positions", config.MaxPositions, config.DModel) : default;
        var layers = new LayerWeights[config.Layers];
        for (int l = 0; l < layers.Length; l++)
            layers[l] = new LayerWeights(Add, config, l);
        Layers = layers;
        FinalNormWeight = Add("final_norm.weight", 1, config.DModel);
        FinalNormBias = Add("final_norm.bias", 1, config.DModel);
        Unembedding = config.TiedEmbeddings
            ? TokenEmbedding with { Name = "unembed (tied to embed.tokens)" }
            : Add("unembed", config.VocabSize, config.DModel);
        UnembeddingBias = Add("unembed.bias", 1, config.VocabSize);
        Slab = new float[next];
    }

    /// <summary>The architecture this slab is laid out for.</summary>
    public ModelConfig Config { get; }

    /// <summary>The single fp32 buffer every tensor lives in.</summary>
    public float[] Slab { get; }

    /// <summary>Token embedding [VocabSize, d].</summary>
    public TensorRef TokenEmbedding { get; }

    /// <summary>Learned positional embedding [MaxPositions, d]; empty when the model has none.</summary>
    public TensorRef PositionEmbedding { get; }

    /// <summary>Per-block tensors, index = layer.</summary>
    public IReadOnlyList<LayerWeights> Layers { get; }

    /// <summary>Final norm weight and bias [d].</summary>
    public TensorRef FinalNormWeight { get; }
    /// <inheritdoc cref="FinalNormWeight"/>
    public TensorRef FinalNormBias { get; }

    /// <summary>Unembedding stored <c>[VocabSize, d]</c> (one contiguous row per token, so a metric that
    /// needs a few logits reads a few rows): logit_v = h·U[v] + b_v. Tied models share the embedding.</summary>
    public TensorRef Unembedding { get; }

    /// <summary>Unembedding bias [VocabSize] (zero for most models).</summary>
    public TensorRef UnembeddingBias { get; }

    /// <summary>Every distinct tensor in slab order (the tied unembedding is not listed twice).</summary>
    public IReadOnlyList<TensorRef> Tensors => _tensors;

    /// <summary>The elements of <paramref name="tensor"/>.</summary>
    public Span<float> Span(TensorRef tensor) => Slab.AsSpan(tensor.Offset, tensor.Length);

    /// <summary>Total number of parameters stored (each tied tensor once).</summary>
    public long ParameterCount => _tensors.Sum(t => (long)t.Length);
}
