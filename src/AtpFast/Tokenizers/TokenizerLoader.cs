namespace AtpFast.Tokenizers;

/// <summary>Picks and loads the right tokenizer from the files a model comes with.</summary>
public static class TokenizerLoader
{
    /// <summary>What <see cref="FromDirectory"/> looks for, in order of preference.</summary>
    public static readonly IReadOnlyList<string> RecognisedFiles =
        ["tokenizer.json", "encoder.json + vocab.bpe", "vocab.json", "reference.json"];

    /// <summary>Loads a tokenizer named by one file: <c>tokenizer.json</c> (Hugging Face byte-level BPE),
    /// <c>encoder.json</c> or <c>vocab.bpe</c> (GPT-2 BPE; the other file must sit beside it),
    /// <c>vocab.json</c> (word-level, a JSON array of tokens) or <c>reference.json</c> (piece vocabulary).</summary>
    /// <exception cref="TokenizerException">The file is missing, unreadable, malformed or of an unknown name.</exception>
    public static ITokenizer FromFile(string path)
    {
        if (!File.Exists(path))
        {
            throw new TokenizerException($"Tokenizer file '{path}' does not exist.");
        }
        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        return Path.GetFileName(path).ToLowerInvariant() switch
        {
            "tokenizer.json" => Gpt2BpeTokenizer.FromTokenizerJson(path),
            "encoder.json" or "vocab.bpe" => LoadGpt2Pair(directory),
            "vocab.json" => WordLevelTokenizer.FromFile(path),
            "reference.json" => PieceTokenizer.FromReferenceJson(path),
            _ => throw new TokenizerException(
                $"Cannot tell the tokenizer kind of '{path}'; expected one of: {string.Join(", ", RecognisedFiles)}."),
        };
    }

    /// <summary>Loads the tokenizer found in <paramref name="directory"/>, trying <see cref="RecognisedFiles"/>
    /// in order.</summary>
    /// <exception cref="TokenizerException">The directory is missing or holds none of them.</exception>
    public static ITokenizer FromDirectory(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new TokenizerException($"Tokenizer directory '{directory}' does not exist.");
        }
        string In(string name) => Path.Combine(directory, name);
        if (File.Exists(In("tokenizer.json")))
        {
            return Gpt2BpeTokenizer.FromTokenizerJson(In("tokenizer.json"));
        }
        if (File.Exists(In("encoder.json")) && File.Exists(In("vocab.bpe")))
        {
            return Gpt2BpeTokenizer.FromEncoderFiles(In("encoder.json"), In("vocab.bpe"));
        }
        if (File.Exists(In("vocab.json")))
        {
            return WordLevelTokenizer.FromFile(In("vocab.json"));
        }
        if (File.Exists(In("reference.json")))
        {
            return PieceTokenizer.FromReferenceJson(In("reference.json"));
        }
        throw new TokenizerException(
            $"No tokenizer in '{directory}'; looked for: {string.Join(", ", RecognisedFiles)}.");
    }

    private static Gpt2BpeTokenizer LoadGpt2Pair(string directory)
    {
        string encoder = Path.Combine(directory, "encoder.json");
        string merges = Path.Combine(directory, "vocab.bpe");
        if (!File.Exists(encoder) || !File.Exists(merges))
        {
            throw new TokenizerException($"GPT-2 BPE needs both '{encoder}' and '{merges}'.");
        }
        return Gpt2BpeTokenizer.FromEncoderFiles(encoder, merges);
    }
}
