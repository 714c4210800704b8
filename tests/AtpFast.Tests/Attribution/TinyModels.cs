namespace AtpFast.Tests.Attribution;

/// <summary>Small random-weight models of each family, built in code (seeded), for gradient and patching checks
/// where every node can be tested: a handful of layers, heads of width 4–8, d = 16.</summary>
internal static class TinyModels
{
    public const int Vocab = 19;

    public static IEnumerable<string> Names => ["gpt2", "neox", "llama"];

    public static ModelWeights Create(string name, int seed = 1) => name switch
    {
        // GPT-2: learned positions, LayerNorm, GELU tanh, fused-style biases, tied unembedding, sequential residual.
        "gpt2" => Build(new ModelConfig(ModelFamily.Gpt2, Vocab, 16, 3, 2, 2, 8, 20, 12, NormKind.LayerNorm, 1e-5f,
            MlpActivation.GeluTanh, RotaryStyle.None, 0, 0, false, true), seed),
        // GPT-NeoX: partial half-split rotary (4 of 8 dims), GELU erf, parallel residual, untied.
        "neox" => Build(new ModelConfig(ModelFamily.GptNeoX, Vocab, 16, 3, 2, 2, 8, 20, 0, NormKind.LayerNorm, 1e-5f,
            MlpActivation.GeluErf, RotaryStyle.HalfSplit, 4, 10000f, true, false), seed),
        // Llama: RMSNorm, SwiGLU, grouped-query attention (4 heads, 2 kv heads), interleaved rotary, untied.
        "llama" => Build(new ModelConfig(ModelFamily.Llama, Vocab, 16, 3, 4, 2, 4, 12, 0, NormKind.RmsNorm, 1e-6f,
            MlpActivation.SwiGlu, RotaryStyle.Interleaved, 4, 500000f, false, false), seed),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    /// <summary>Fills every tensor: linear weights N(0, 1/in), biases N(0, 0.1²), norm weights 1 + N(0, 0.1²),
    /// embeddings N(0, 1); the RMSNorm bias slots stay zero as the slab contract says.</summary>
    public static ModelWeights Build(ModelConfig config, int seed)
    {
        var weights = new ModelWeights(config);
        var rng = new Random(seed);
        foreach (var t in weights.Tensors)
        {
            var span = weights.Span(t);
            bool norm = t.Name.Contains("ln", StringComparison.Ordinal) || t.Name.Contains("norm", StringComparison.Ordinal);
            bool bias = t.Name.EndsWith("bias", StringComparison.Ordinal) || t.Name.Contains(".b", StringComparison.Ordinal);
            if (norm && bias && config.Norm == NormKind.RmsNorm) continue;
            double scale = t.Name.StartsWith("embed", StringComparison.Ordinal) ? 1.0
                : norm || bias ? 0.1
                : t.Name == "unembed" ? 1.0 / Math.Sqrt(config.DModel)
                : 1.0 / Math.Sqrt(t.Rows);
            double offset = norm && !bias ? 1.0 : 0.0;
            for (int i = 0; i < span.Length; i++) span[i] = (float)(offset + scale * Normal(rng));
        }
        return weights;
    }

    public static double Normal(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    public static int[] Tokens(Random rng, int count, int vocab = Vocab) => [.. Enumerable.Range(0, count).Select(_ => rng.Next(vocab))];
}
