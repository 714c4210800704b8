using System.Text.Json;
using AtpFast.Tokenizers;

namespace AtpFast.Tests.Tokenizers;

/// <summary>stories260K's piece vocabulary: decoding reproduces the reference generation's text, and encoding
/// (llama2.c algorithm, score = −id) round-trips and reproduces the model's own tokenisation.</summary>
public sealed class PieceTokenizerTests
{
    private static (PieceTokenizer Tokenizer, int[] GreedyFromBos, string GreedyText) Load()
    {
        string path = TokenizerTestFiles.Stories260KReference;
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var root = document.RootElement;
        int[] ids = root.GetProperty("greedy_from_bos").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        return (PieceTokenizer.FromReferenceJson(path), ids, root.GetProperty("greedy_text").GetString()!);
    }

    [Fact]
    public void Decode_of_greedy_ids_after_bos_is_greedy_text()
    {
        var (tokenizer, ids, text) = Load();
        Assert.Equal(512, tokenizer.VocabSize);
        Assert.Equal(PieceTokenizer.BosId, ids[0]);
        Assert.Equal(text, tokenizer.Decode(ids.AsSpan(1)));
    }

    [Fact]
    public void Decode_strips_the_dummy_prefix_after_bos_like_llama2c()
    {
        var (tokenizer, ids, text) = Load();
        Assert.StartsWith(" ", text, StringComparison.Ordinal);
        Assert.Equal(text[1..], tokenizer.Decode(ids));
    }

    [Fact]
    public void Encode_with_bos_round_trips_greedy_text()
    {
        var (tokenizer, _, text) = Load();
        string original = text[1..]; // the text sentencepiece saw before adding its dummy-prefix space
        int[] encoded = tokenizer.Encode(original, addBos: true);
        Assert.Equal(PieceTokenizer.BosId, encoded[0]);
        Assert.Equal(original, tokenizer.Decode(encoded));
        Assert.Equal(text, tokenizer.Decode(encoded.AsSpan(1)));
    }

    [Fact]
    public void Encode_reproduces_the_models_own_ids()
    {
        // The model generated greedy_from_bos; sentencepiece-encoding its text (without the dummy-prefix space
        // the decoder printed) must give the same 41 ids, including oddities such as " |out|s|id|e".
        var (tokenizer, ids, text) = Load();
        Assert.Equal(ids, tokenizer.Encode(text[1..], addBos: true));
    }

    [Fact]
    public void Characters_without_a_piece_fall_back_to_bytes()
    {
        var (tokenizer, _, _) = Load();
        const string text = "m\u00fcde \U0001F389!"; // stories260K has no 'ü' or emoji piece (it does have 'é')
        int[] ids = tokenizer.Encode(text, addBos: true);
        Assert.Contains(ids, id => tokenizer.TokenText(id) == "<0xC3>");
        Assert.Contains(ids, id => tokenizer.TokenText(id) == "<0xF0>");
        Assert.Equal(text, tokenizer.Decode(ids));
    }

    [Fact]
    public void Add_bos_flag_controls_the_default_encode()
    {
        string path = TokenizerTestFiles.Stories260KReference;
        var withBos = PieceTokenizer.FromReferenceJson(path, addBos: true);
        var withoutBos = PieceTokenizer.FromReferenceJson(path);
        Assert.Equal(PieceTokenizer.BosId, withBos.Encode("Once")[0]);
        Assert.Equal(withBos.Encode("Once")[1..], withoutBos.Encode("Once"));
        Assert.Empty(withoutBos.Encode(""));
    }
}
