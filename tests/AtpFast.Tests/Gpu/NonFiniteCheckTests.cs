using AtpFast.Cpu;
using AtpFast.Tests.Attribution;

namespace AtpFast.Tests.Gpu;

/// <summary>
/// The GPU backend defers its NaN/infinity checks to the end of each pass (one read-back instead of one per layer) and
/// must still report what checking after every layer reported: the first flagged check in pass order and its first
/// flagged example — the same pass, layer, example and message as the CPU backend, even when the non-finite value
/// spreads to every later check of the pass.
/// </summary>
public sealed class NonFiniteCheckTests
{
    private static readonly int[] Tokens = [1, 3, 4, 1, 2, 3]; // two examples of 3 tokens; token 2 only in example 1

    private static NonFiniteValueException OnBoth(ModelWeights weights, Action<IBackend> pass)
    {
        using var cpu = new CpuBackend(weights);
        using var gpu = GpuBackends.CpuAccelerator(weights);
        var expected = Assert.Throws<NonFiniteValueException>(() => pass(cpu));
        var actual = Assert.Throws<NonFiniteValueException>(() => pass(gpu));
        Assert.Equal(expected.Message, actual.Message);
        Assert.Equal((expected.Pass, expected.Layer, expected.Example), (actual.Pass, actual.Layer, actual.Example));
        return actual;
    }

    [Fact]
    public void An_infinite_embedding_row_is_reported_at_the_embedding_for_its_example()
    {
        var weights = TinyModels.Create("gpt2");
        weights.Span(weights.TokenEmbedding)[2 * weights.Config.DModel] = float.PositiveInfinity; // token 2
        var e = OnBoth(weights, b => b.Run(Tokens, 2, 3).Dispose());
        Assert.Equal(("forward", -1, 1), (e.Pass, e.Layer, e.Example));
        e = OnBoth(weights, b => b.Forward(Tokens, 2, 3, new float[2 * 3 * weights.Config.VocabSize]));
        Assert.Equal(("forward", -1, 1), (e.Pass, e.Layer, e.Example));
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    public void A_NaN_weight_is_reported_at_its_layer(string model)
    {
        var weights = TinyModels.Create(model);
        weights.Span(weights.Layers[1].WIn)[5] = float.NaN;
        var e = OnBoth(weights, b => b.Run(Tokens, 2, 3).Dispose());
        Assert.Equal(("forward", 1, 0), (e.Pass, e.Layer, e.Example));
        OnBoth(weights, b => b.Forward(Tokens, 2, 3, new float[2 * 3 * weights.Config.VocabSize]));
    }

    [Fact]
    public void A_NaN_in_a_cached_residual_is_reported_by_the_backward_pass_at_its_block()
    {
        var weights = TinyModels.Create("gpt2");
        var targets = new MetricTargets(MetricKind.LogitDiff, [4, 5], [5, 4]);
        var nan = new double[weights.Config.DModel];
        nan[3] = double.NaN;
        var e = OnBoth(weights, b =>
        {
            using var run = b.Run(Tokens, 2, 3);
            b.WriteNode(run, 1, new Node(NodeType.ResidPre, 1, 0, 1), nan);
            using var gradients = b.CreateGradients(run);
            b.Backward(run, targets, gradients);
        });
        Assert.Equal(("backward", 1, 1), (e.Pass, e.Layer, e.Example));
    }

    [Fact]
    public void A_NaN_patched_in_is_reported_by_the_patched_forward_pass()
    {
        var weights = TinyModels.Create("gpt2");
        var targets = new MetricTargets(MetricKind.LogitDiff, [4, 5], [5, 4]);
        var nan = new double[weights.Config.DModel];
        nan[3] = double.NaN;
        var node = new Node(NodeType.AttnOut, 1, 0, 1);
        var e = OnBoth(weights, b =>
        {
            using var clean = b.Run(Tokens, 2, 3);
            using var noise = b.Run([3, 1, 4, 2, 2, 1], 2, 3);
            b.WriteNode(noise, 1, node, nan);
            var runs = new[] { new PatchRun(0, new[] { node }), new PatchRun(1, new[] { node }) };
            b.PatchedMetric(clean, noise, runs, targets, new double[runs.Length]);
        });
        Assert.Equal(("patched forward", 1, 1), (e.Pass, e.Layer, e.Example));
    }
}
