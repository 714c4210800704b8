namespace AtpFast.Tests.Tokenizers;

/// <summary>GPT-2 BPE reproduces the ids of OpenAI's reference encoder (expected ids computed with the
/// reference algorithm of gpt-2/src/encoder.py over the same encoder.json / vocab.bpe).</summary>
public sealed class Gpt2KnownIdsTests
{
    [Theory]
    [InlineData("Hello world", new[] { 15496, 995 })]
    [InlineData(" the", new[] { 262 })]
    [InlineData("I'll we've they're", new[] { 40, 1183, 356, 1053, 484, 821 })]
    [InlineData("The caf\u00e9's 2 owners paid $1,234.56 \u2014 twice!  Wow \U0001F389\n\nNew line\tand  spaces   end.",
        new[] { 464, 40304, 338, 362, 4393, 3432, 720, 16, 11, 24409, 13, 3980, 851, 5403, 0, 220, 24755, 12520, 236, 231,
            198, 198, 3791, 1627, 197, 392, 220, 9029, 220, 220, 886, 13 })]
    public void Encode_matches_reference_ids(string text, int[] expected)
    {
        Assert.Equal(expected, TokenizerTestFiles.Gpt2.Encode(text));
    }

    [Fact]
    public void Vocabulary_entries_are_byte_level_strings()
    {
        var gpt2 = TokenizerTestFiles.Gpt2;
        Assert.Equal(50257, gpt2.VocabSize);
        Assert.Equal("\u0120the", gpt2.TokenText(262));
        Assert.True(gpt2.TryGetId("<|endoftext|>", out int eos));
        Assert.Equal(50256, eos);
    }
}
