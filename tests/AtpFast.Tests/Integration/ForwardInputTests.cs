using AtpFast.Cpu;
using AtpFast.Onnx;

namespace AtpFast.Tests.Integration;

/// <summary>Bad input to a forward pass gives <see cref="InvalidModelInputException"/> naming the problem; batching
/// and causality invariants hold.</summary>
public sealed class ForwardInputTests
{
    private static readonly Lazy<ImportedModel> Model = new(() => OnnxImporter.Load(ModelPaths.Stories260K));

    private static CpuBackend Backend() => new(Model.Value.Weights);

    private static int Vocab => Model.Value.Config.VocabSize;

    [Fact]
    public void Token_id_out_of_range_names_the_id_and_position()
    {
        using var backend = Backend();
        int[] ids = [1, 5, Vocab + 3, 7];
        var e = Assert.Throws<InvalidModelInputException>(() => backend.Forward(ids, 1, 4, new float[4 * Vocab]));
        Assert.Contains($"token id {Vocab + 3}", e.Message, StringComparison.Ordinal);
        Assert.Contains("position 2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Negative_token_id_is_rejected()
    {
        using var backend = Backend();
        var e = Assert.Throws<InvalidModelInputException>(() => backend.Forward([-1], 1, 1, new float[Vocab]));
        Assert.Contains("token id -1", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Empty_prompt_is_rejected()
    {
        using var backend = Backend();
        var e = Assert.Throws<InvalidModelInputException>(() => backend.Forward([], 1, 0, []));
        Assert.Contains("empty prompt", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Prompt_longer_than_learned_positions_is_rejected()
    {
        var ioi = OnnxImporter.Load(Path.Combine(ModelPaths.RepoRoot, "src/AtpFast/Models/ioi-gpt2/model.onnx"));
        using var backend = new CpuBackend(ioi.Weights);
        int seq = ioi.Config.MaxPositions + 1;
        var e = Assert.Throws<InvalidModelInputException>(() => backend.Forward(new int[seq], 1, seq, new float[seq * ioi.Config.VocabSize]));
        Assert.Contains("longer than the model's", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Wrong_buffer_sizes_are_rejected()
    {
        using var backend = Backend();
        Assert.Throws<InvalidModelInputException>(() => backend.Forward([1, 2, 3], 2, 2, new float[4 * Vocab]));
        Assert.Throws<InvalidModelInputException>(() => backend.Forward([1, 2, 3, 4], 2, 2, new float[3 * Vocab]));
    }

    [Fact]
    public void A_batch_equals_its_sequences_run_alone_and_later_tokens_do_not_change_earlier_logits()
    {
        using var backend = Backend();
        var rng = new Random(3);
        int seq = 9;
        int[] a = Enumerable.Range(0, seq).Select(_ => rng.Next(Vocab)).ToArray();
        int[] b = (int[])a.Clone();
        b[6] = (b[6] + 1) % Vocab; // differs only from position 6 on
        var both = new float[2 * seq * Vocab];
        backend.Forward([.. a, .. b], 2, seq, both);
        var alone = new float[seq * Vocab];
        backend.Forward(a, 1, seq, alone);
        Assert.Equal(alone, both[..(seq * Vocab)]);
        // Causality: positions 0..5 of b see the same prefix as a.
        Assert.Equal(both[..(6 * Vocab)], both[(seq * Vocab)..((seq + 6) * Vocab)]);
        Assert.NotEqual(both[(6 * Vocab)..(7 * Vocab)], both[((seq + 6) * Vocab)..((seq + 7) * Vocab)]);
    }
}
