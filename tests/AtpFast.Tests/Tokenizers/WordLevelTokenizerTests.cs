using AtpFast.Tokenizers;

namespace AtpFast.Tests.Tokenizers;

/// <summary>The IOI model's word-level tokenizer: regex split, exact ids, documented spacing rule, and no
/// silent fallback for unknown words.</summary>
public sealed class WordLevelTokenizerTests
{
    private static readonly string[] Vocab =
        ["When", "Mary", "and", "John", "went", "to", "the", "store", ",", "gave", "a", "drink", ".", "'", "s", "!"];

    [Fact]
    public void Encode_splits_words_and_punctuation()
    {
        var tokenizer = new WordLevelTokenizer(Vocab);
        Assert.Equal([4, 5, 6, 7, 8], tokenizer.Encode("went to the store,"));
    }

    [Theory]
    [InlineData("When Mary and John went to the store, John gave a drink to Mary.")]
    [InlineData("Mary's drink!")]
    [InlineData("When John's store, Mary's drink.")]
    public void Decode_of_encode_is_normally_written_text(string text)
    {
        var tokenizer = new WordLevelTokenizer(Vocab);
        Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
    }

    [Fact]
    public void Unknown_word_names_the_word_and_its_offset()
    {
        var tokenizer = new WordLevelTokenizer(Vocab);
        var error = Assert.Throws<TokenizerException>(() => tokenizer.Encode("Mary went to the park"));
        Assert.Contains("'park'", error.Message, StringComparison.Ordinal);
        Assert.Contains("offset 17", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Loads_a_json_array_vocabulary()
    {
        using var temp = new TempFolder("tok");
        string path = temp.File("vocab.json", "[\"a\", \"b\", \"c\"]");
        var tokenizer = WordLevelTokenizer.FromFile(path);
        Assert.Equal(3, tokenizer.VocabSize);
        Assert.True(tokenizer.TryGetId("c", out int id));
        Assert.Equal(2, id);
    }
}
