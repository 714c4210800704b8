using AtpFast.Tokenizers;

namespace AtpFast.Tests.Tokenizers;

/// <summary>The loader picks the tokenizer kind from the files present.</summary>
public sealed class TokenizerLoaderTests
{
    [Fact]
    public void Gpt2_directory_loads_byte_level_bpe()
    {
        var tokenizer = TokenizerLoader.FromDirectory(TokenizerTestFiles.Gpt2Directory);
        Assert.IsType<Gpt2BpeTokenizer>(tokenizer);
        Assert.Equal([15496, 995], tokenizer.Encode("Hello world"));
        Assert.IsType<Gpt2BpeTokenizer>(TokenizerLoader.FromFile(Path.Combine(TokenizerTestFiles.Gpt2Directory, "vocab.bpe")));
    }

    [Fact]
    public void Reference_json_loads_pieces()
    {
        string path = TokenizerTestFiles.Stories260KReference;
        Assert.IsType<PieceTokenizer>(TokenizerLoader.FromFile(path));
        Assert.IsType<PieceTokenizer>(TokenizerLoader.FromDirectory(Path.GetDirectoryName(path)!));
    }

    [Fact]
    public void Vocab_json_loads_word_level()
    {
        using var temp = new TempFolder("tok");
        temp.File("vocab.json", "[\"Mary\", \"John\"]");
        var tokenizer = TokenizerLoader.FromDirectory(temp.Path);
        Assert.IsType<WordLevelTokenizer>(tokenizer);
        Assert.Equal([1, 0], tokenizer.Encode("John Mary"));
    }
}
