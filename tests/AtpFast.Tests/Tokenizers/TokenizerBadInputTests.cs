using AtpFast.Tokenizers;

namespace AtpFast.Tests.Tokenizers;

/// <summary>Missing files, malformed JSON and out-of-range ids raise <see cref="TokenizerException"/> with a
/// message that names the problem.</summary>
public sealed class TokenizerBadInputTests
{
    [Fact]
    public void Missing_file_is_named()
    {
        var error = Assert.Throws<TokenizerException>(() => TokenizerLoader.FromFile("/nonexistent/vocab.json"));
        Assert.Contains("/nonexistent/vocab.json", error.Message, StringComparison.Ordinal);
        Assert.Throws<TokenizerException>(() => WordLevelTokenizer.FromFile("/nonexistent/vocab.json"));
    }

    [Fact]
    public void Directory_without_tokenizer_lists_what_was_looked_for()
    {
        using var temp = new TempFolder("tok");
        var error = Assert.Throws<TokenizerException>(() => TokenizerLoader.FromDirectory(temp.Path));
        foreach (string name in new[] { "tokenizer.json", "encoder.json", "vocab.bpe", "vocab.json", "reference.json" })
        {
            Assert.Contains(name, error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Encoder_json_without_vocab_bpe_is_an_error()
    {
        using var temp = new TempFolder("tok");
        string path = temp.File("encoder.json", "{\"a\": 0}");
        var error = Assert.Throws<TokenizerException>(() => TokenizerLoader.FromFile(path));
        Assert.Contains("vocab.bpe", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("vocab.json", "[\"a\", \"b\"")]
    [InlineData("vocab.json", "{\"a\": 0}")]
    [InlineData("vocab.json", "[\"a\", 3]")]
    [InlineData("tokenizer.json", "{\"model\": {\"vocab\": {\"a\": 0}}}")]
    [InlineData("tokenizer.json", "{\"model\": {\"vocab\": {\"a\": 0, \"b\": 5}, \"merges\": []}}")]
    [InlineData("tokenizer.json", "{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"ab\"]}}")]
    [InlineData("reference.json", "{\"config\": {}}")]
    [InlineData("reference.json", "not json")]
    public void Malformed_file_is_rejected(string name, string contents)
    {
        using var temp = new TempFolder("tok");
        string path = temp.File(name, contents);
        var error = Assert.Throws<TokenizerException>(() => TokenizerLoader.FromFile(path));
        Assert.Contains(name, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Out_of_range_ids_are_rejected_by_every_tokenizer()
    {
        var tokenizers = new ITokenizer[]
        {
            new WordLevelTokenizer(["a", "b"]),
            new PieceTokenizer(["<unk>", "<s>", "</s>", " a"]),
            new Gpt2BpeTokenizer(new Dictionary<string, int> { ["a"] = 0, ["b"] = 1, ["ab"] = 2 }, [("a", "b")]),
        };
        foreach (var tokenizer in tokenizers)
        {
            int size = tokenizer.VocabSize;
            var tooLarge = Assert.Throws<TokenizerException>(() => tokenizer.Decode([0, size]));
            Assert.Contains(size.ToString(System.Globalization.CultureInfo.InvariantCulture), tooLarge.Message, StringComparison.Ordinal);
            Assert.Throws<TokenizerException>(() => tokenizer.Decode([-1]));
            Assert.Throws<TokenizerException>(() => tokenizer.TokenText(size));
        }
    }

    [Fact]
    public void Unencodable_character_names_it_and_its_offset()
    {
        // A piece vocabulary without byte pieces cannot encode 'z'.
        var tokenizer = new PieceTokenizer(["<unk>", "<s>", "</s>", " ", "a"]);
        var error = Assert.Throws<TokenizerException>(() => tokenizer.Encode("aaz"));
        Assert.Contains("'z'", error.Message, StringComparison.Ordinal);
        Assert.Contains("offset 2", error.Message, StringComparison.Ordinal);
    }
}
