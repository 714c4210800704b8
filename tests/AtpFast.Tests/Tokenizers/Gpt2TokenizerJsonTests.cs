using System.Text.Json;
using AtpFast.Tokenizers;

namespace AtpFast.Tests.Tokenizers;

/// <summary>A Hugging Face tokenizer.json built from encoder.json + vocab.bpe encodes identically, with merges
/// written either as "a b" strings or as ["a", "b"] arrays.</summary>
public sealed class Gpt2TokenizerJsonTests
{
    private const string Sample =
        "The caf\u00e9's 2 owners paid $1,234.56 \u2014 twice!  Wow \U0001F389\n\nWhen Mary and John went to the store.";

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Tokenizer_json_gives_the_same_ids_as_encoder_files(bool mergesAsArrays)
    {
        string dir = TokenizerTestFiles.Gpt2Directory;
        using var temp = new TempFolder("tok");
        string path = temp.File("tokenizer.json", BuildTokenizerJson(dir, mergesAsArrays));

        var fromJson = Gpt2BpeTokenizer.FromTokenizerJson(path);

        Assert.Equal(TokenizerTestFiles.Gpt2.VocabSize, fromJson.VocabSize);
        Assert.Equal(TokenizerTestFiles.Gpt2.Encode(Sample), fromJson.Encode(Sample));
        Assert.Equal(Sample, fromJson.Decode(fromJson.Encode(Sample)));
    }

    private static string BuildTokenizerJson(string gpt2Directory, bool mergesAsArrays)
    {
        string encoder = File.ReadAllText(Path.Combine(gpt2Directory, "encoder.json"));
        var merges = File.ReadAllLines(Path.Combine(gpt2Directory, "vocab.bpe"))
            .Skip(1).Where(line => line.Length > 0).ToList();
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            writer.WriteStartObject("model");
            writer.WriteString("type", "BPE");
            writer.WritePropertyName("vocab");
            writer.WriteRawValue(encoder);
            writer.WriteStartArray("merges");
            foreach (string merge in merges)
            {
                if (mergesAsArrays)
                {
                    writer.WriteStartArray();
                    foreach (string part in merge.Split(' '))
                    {
                        writer.WriteStringValue(part);
                    }
                    writer.WriteEndArray();
                }
                else
                {
                    writer.WriteStringValue(merge);
                }
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
