namespace AtpFast.Tests.Tokenizers;

/// <summary>decode(encode(text)) == text for GPT-2 BPE, which is lossless on any valid UTF-16 text.</summary>
public sealed class Gpt2RoundTripTests
{
    public static TheoryData<string> Paragraphs => new()
    {
        "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
            + "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
            + "it was the season of Darkness.",
        "When Mary and John went to the store, John gave a drink to Mary. Afterwards, they walked home along "
            + "the river — past 3 bridges, 12 lamp-posts and a caf\u00e9 called \"L'\u00c9toile\".\n\n"
            + "    Indented line with trailing spaces   \n\tTabbed line; (parenthesised) [bracketed] {braced}!",
        "Na\u00efve r\u00e9sum\u00e9s, \u4e2d\u6587\u5b57\u7b26, \u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442, "
            + "emoji \U0001F600\U0001F680 and math: \u2211 x\u00b2 \u2264 10\u207b\u00b3 ... done?!",
    };

    [Theory]
    [MemberData(nameof(Paragraphs))]
    public void Decode_of_encode_is_the_text(string text)
    {
        var gpt2 = TokenizerTestFiles.Gpt2;
        Assert.Equal(text, gpt2.Decode(gpt2.Encode(text)));
    }

    [Fact]
    public void A_very_long_word_encodes_and_round_trips()
    {
        // 20k letters in one pre-token: the merge loop must not rescan the word after every merge.
        var gpt2 = TokenizerTestFiles.Gpt2;
        string word = string.Concat(Enumerable.Repeat("abracadabra", 2000));
        int[] ids = gpt2.Encode(word);
        Assert.True(ids.Length < word.Length / 2, $"{ids.Length} tokens for {word.Length} letters");
        Assert.Equal(word, gpt2.Decode(ids));
    }

    [Fact]
    public void Encoding_twice_gives_the_same_ids()
    {
        // The second call is served from the pre-token cache.
        var gpt2 = TokenizerTestFiles.Gpt2;
        string text = "the cache must not change the answer, the cache must not change the answer";
        int[] first = gpt2.Encode(text);
        int[] cached = gpt2.Encode(text);
        Assert.Equal(first, cached);
    }
}
