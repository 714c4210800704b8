using AtpFast.Attribution;
using AtpFast.Tasks;

namespace AtpFast.Tests.Attribution;

/// <summary>Bad input gives a clear typed error naming the problem, one test each.</summary>
public sealed class AttributionBadInputTests
{
    private static readonly ModelWeights Model = TinyModels.Create("gpt2");

    [Fact]
    public void Clean_and_noise_of_different_token_length_are_rejected_naming_the_pair()
    {
        PromptPair[] pairs = [new([1, 2, 3], [1, 2, 3], 4, 5), new([1, 2, 3, 4], [1, 2, 3], 4, 5, Line: 7)];
        var e = Assert.Throws<InvalidModelInputException>(() => AtpFast.Attribution.Attribution.Run(Model, pairs));
        Assert.Contains("pair 1 (task file line 7)", e.Message, StringComparison.Ordinal);
        Assert.Contains("equal token lengths", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_answer_token_outside_the_vocabulary_is_rejected()
    {
        PromptPair[] pairs = [new([1, 2, 3], [3, 2, 1], TinyModels.Vocab + 3, 5)];
        var e = Assert.Throws<InvalidModelInputException>(() => AtpFast.Attribution.Attribution.Run(Model, pairs));
        Assert.Contains($"answer token {TinyModels.Vocab + 3} is outside the vocabulary", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_task_file_or_pair_list_is_rejected()
    {
        var file = Assert.Throws<TaskFileException>(() => TaskFile.Parse("\n\n", null, TinyModels.Vocab, "pairs.jsonl"));
        Assert.Contains("no prompt pairs", file.Message, StringComparison.Ordinal);
        var api = Assert.Throws<InvalidModelInputException>(() => AtpFast.Attribution.Attribution.Run(Model, []));
        Assert.Contains("no prompt pairs", api.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_NaN_appearing_in_a_pass_is_reported_with_the_pass_and_layer()
    {
        var weights = TinyModels.Create("gpt2");
        weights.Span(weights.Layers[1].WIn)[5] = float.NaN;
        PromptPair[] pairs = [new([1, 2, 3], [3, 2, 1], 4, 5)];
        var e = Assert.Throws<NonFiniteValueException>(() => AtpFast.Attribution.Attribution.Run(weights, pairs));
        Assert.Equal("forward", e.Pass);
        Assert.Equal(1, e.Layer);
        Assert.Contains("forward pass at layer 1", e.Message, StringComparison.Ordinal);

        var embedding = TinyModels.Create("gpt2");
        embedding.Span(embedding.TokenEmbedding)[2 * embedding.Config.DModel] = float.PositiveInfinity; // token 2
        var e2 = Assert.Throws<NonFiniteValueException>(() => AtpFast.Attribution.Attribution.Run(embedding, [new([1, 2, 3], [3, 0, 1], 4, 5)]));
        Assert.Equal(-1, e2.Layer);
        Assert.Contains("embedding", e2.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Pairs_of_several_token_lengths_are_rejected_with_the_lengths()
    {
        PromptPair[] pairs = [new([1, 2, 3], [3, 2, 1], 4, 5), new([1, 2], [2, 1], 4, 5)];
        var e = Assert.Throws<InvalidModelInputException>(() => AtpFast.Attribution.Attribution.Run(Model, pairs));
        Assert.Contains("2 token lengths (2, 3)", e.Message, StringComparison.Ordinal);
        Assert.Equal(2, PromptPairs.GroupByLength(pairs).Count);
    }

    [Fact]
    public void The_normalised_logit_difference_of_a_pair_without_contrast_is_undefined()
    {
        PromptPair[] pairs = [new([1, 2, 3], [1, 2, 3], 4, 5, Line: 2)];
        var e = Assert.Throws<MetricUndefinedException>(() => AtpFast.Attribution.Attribution.Run(Model, pairs,
            new AttributionOptions { Metric = MetricKind.NormalizedLogitDiff }));
        Assert.Contains("task file line 2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AtP_of_KL_in_the_noising_direction_is_reported_meaningless_instead_of_ranked()
    {
        PromptPair[] pairs = [new([1, 2, 3], [3, 2, 1], 4, 5)];
        var result = AtpFast.Attribution.Attribution.Run(Model, pairs, new AttributionOptions { Metric = MetricKind.Kl });
        Assert.False(result.Meaningful);
        Assert.Empty(result.Rows);
        Assert.Contains("gradient is zero", result.Notes.Single(), StringComparison.Ordinal);
        var denoising = AtpFast.Attribution.Attribution.Run(Model, pairs, new AttributionOptions { Metric = MetricKind.Kl, Direction = Direction.Denoising });
        Assert.True(denoising.Meaningful);
        Assert.NotEmpty(denoising.Rows);
    }

    [Fact]
    public void GradDrop_on_a_one_layer_model_is_rejected()
    {
        var config = TinyModels.Create("gpt2").Config with { Layers = 1 };
        var weights = TinyModels.Build(config, 3);
        var e = Assert.Throws<InvalidModelInputException>(() => AtpFast.Attribution.Attribution.Run(weights, [new([1, 2], [2, 1], 4, 5)]));
        Assert.Contains("at least two layers", e.Message, StringComparison.Ordinal);
    }
}
