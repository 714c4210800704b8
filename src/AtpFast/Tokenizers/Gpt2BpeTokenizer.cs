using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace AtpFast.Tokenizers;

/// <summary>
/// GPT-2 byte-level BPE. Text is split by the GPT-2 pre-tokenisation regex; each piece's UTF-8 bytes are written
/// as characters through GPT-2's byte-to-unicode map (printable bytes map to themselves, the others to
/// U+0100..), then adjacent symbols are merged, lowest merge rank first, until no ranked pair is left; each
/// final symbol is a vocabulary entry. Decode maps the entries' characters back to bytes and reads them as
/// UTF-8 (invalid sequences, e.g. half a multi-byte character, become U+FFFD).
/// </summary>
/// <remarks>Merging uses a priority queue over a linked list of symbols, O(n log n) per pre-token, and
/// finished pre-tokens are cached, so long words and repetitive task files stay cheap. Thread-safe.</remarks>
public sealed partial class Gpt2BpeTokenizer : ITokenizer
{
    private const int CacheCapacity = 1 << 16;
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly Dictionary<char, byte> CharToByte = BuildCharToByte();

    private readonly Vocabulary _vocab;
    private readonly Dictionary<(string Left, string Right), int> _mergeRanks;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    /// <summary>Builds the tokenizer from its vocabulary (token → id, ids dense from 0) and its merges in rank
    /// order (rank = index).</summary>
    public Gpt2BpeTokenizer(IReadOnlyDictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges)
        : this(Vocabulary.FromMap(vocab, "BPE vocabulary"), merges)
    {
    }

    private Gpt2BpeTokenizer(Vocabulary vocab, IReadOnlyList<(string Left, string Right)> merges)
    {
        _vocab = vocab;
        _mergeRanks = new Dictionary<(string, string), int>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            _mergeRanks.TryAdd(merges[rank], rank);
        }
    }

    /// <summary>Loads OpenAI's GPT-2 files: <c>encoder.json</c> (token → id) and <c>vocab.bpe</c> (a
    /// "#version" header line, then one merge "left right" per line in rank order).</summary>
    public static Gpt2BpeTokenizer FromEncoderFiles(string encoderJsonPath, string vocabBpePath)
    {
        using var document = JsonFiles.Parse(JsonFiles.ReadText(encoderJsonPath), encoderJsonPath);
        var vocab = Vocabulary.FromMap(JsonFiles.TokenIdMap(document.RootElement, encoderJsonPath), encoderJsonPath);
        var merges = new List<(string, string)>();
        int lineNumber = 0;
        foreach (string line in JsonFiles.ReadText(vocabBpePath).Split('\n'))
        {
            lineNumber++;
            string trimmed = line.TrimEnd('\r');
            if (trimmed.Length == 0 || (lineNumber == 1 && trimmed.StartsWith("#version", StringComparison.Ordinal)))
            {
                continue;
            }
            merges.Add(SplitMerge(trimmed, $"{vocabBpePath} line {lineNumber}"));
        }
        return new Gpt2BpeTokenizer(vocab, merges);
    }

    /// <summary>Loads a Hugging Face <c>tokenizer.json</c> of a byte-level BPE model: <c>model.vocab</c>
    /// (token → id) and <c>model.merges</c> as "left right" strings or ["left", "right"] arrays.</summary>
    public static Gpt2BpeTokenizer FromTokenizerJson(string path)
    {
        using var document = JsonFiles.Parse(JsonFiles.ReadText(path), path);
        if (!document.RootElement.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
        {
            throw new TokenizerException($"{path}: no \"model\" object.");
        }
        if (model.TryGetProperty("type", out var type) && type.GetString() is { } typeName && typeName != "BPE")
        {
            throw new TokenizerException($"{path}: model type is '{typeName}', only byte-level 'BPE' is supported.");
        }
        if (!model.TryGetProperty("vocab", out var vocabElement) || !model.TryGetProperty("merges", out var mergesElement)
            || mergesElement.ValueKind != JsonValueKind.Array)
        {
            throw new TokenizerException($"{path}: \"model\" needs a \"vocab\" object and a \"merges\" array.");
        }
        var vocab = Vocabulary.FromMap(JsonFiles.TokenIdMap(vocabElement, $"{path} model.vocab"), path);
        var merges = new List<(string, string)>(mergesElement.GetArrayLength());
        foreach (var merge in mergesElement.EnumerateArray())
        {
            string where = $"{path} model.merges[{merges.Count}]";
            merges.Add(merge.ValueKind switch
            {
                JsonValueKind.String => SplitMerge(merge.GetString()!, where),
                JsonValueKind.Array when merge.GetArrayLength() == 2
                    && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String
                    => (merge[0].GetString()!, merge[1].GetString()!),
                _ => throw new TokenizerException($"{where}: expected \"left right\" or [\"left\", \"right\"]."),
            });
        }
        return new Gpt2BpeTokenizer(vocab, merges);
    }

    /// <inheritdoc />
    public int VocabSize => _vocab.Count;

    /// <inheritdoc />
    public int[] Encode(string text)
    {
        var ids = new List<int>(text.Length / 3 + 1);
        foreach (Match match in PreTokenPattern().Matches(text))
        {
            if (!_cache.TryGetValue(match.Value, out int[]? pieceIds))
            {
                pieceIds = EncodePreToken(match.Value, match.Index);
                if (_cache.Count >= CacheCapacity)
                {
                    _cache.Clear();
                }
                _cache[match.Value] = pieceIds;
            }
            ids.AddRange(pieceIds);
        }
        return [.. ids];
    }

    /// <inheritdoc />
    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>(ids.Length * 4);
        foreach (int id in ids)
        {
            foreach (char c in _vocab.Checked(id))
            {
                bytes.Add(CharToByte.TryGetValue(c, out byte b)
                    ? b
                    : throw new TokenizerException($"Token {id} ('{_vocab[id]}') holds '{c}', which is not a byte-level character."));
            }
        }
        return Encoding.UTF8.GetString([.. bytes]);
    }

    /// <inheritdoc />
    public string TokenText(int id) => _vocab.Checked(id);

    /// <inheritdoc />
    public bool TryGetId(string token, out int id) => _vocab.TryGetId(token, out id);

    /// <summary>BPE of one pre-token: its UTF-8 bytes as byte-level characters, merged lowest rank first.</summary>
    private int[] EncodePreToken(string preToken, int offset)
    {
        var symbols = Encoding.UTF8.GetBytes(preToken).Select(b => ByteToChar[b].ToString()).ToList();
        var merged = PairMerger.Merge(symbols, (string left, string right, out int rank) => _mergeRanks.TryGetValue((left, right), out rank));
        var ids = new int[merged.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            if (!_vocab.TryGetId(merged[i], out ids[i]))
            {
                throw new TokenizerException(
                    $"Text '{preToken}' at character offset {offset} produced the BPE symbol '{merged[i]}', which is not in the vocabulary.");
            }
        }
        return ids;
    }

    private static (string Left, string Right) SplitMerge(string merge, string where)
    {
        int space = merge.IndexOf(' ', StringComparison.Ordinal);
        if (space <= 0 || space == merge.Length - 1 || merge.IndexOf(' ', space + 1) >= 0)
        {
            throw new TokenizerException($"{where}: merge '{merge}' is not two symbols separated by one space.");
        }
        return (merge[..space], merge[(space + 1)..]);
    }

    /// <summary>GPT-2's bytes_to_unicode: bytes '!'..'~', '¡'..'¬', '®'..'ÿ' map to the same code point; the
    /// remaining 68 bytes map, in byte order, to U+0100, U+0101, ….</summary>
    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)(256 + extra++);
        }
        return map;
    }

    private static Dictionary<char, byte> BuildCharToByte()
    {
        var map = new Dictionary<char, byte>(256);
        for (int b = 0; b < 256; b++)
        {
            map[ByteToChar[b]] = (byte)b;
        }
        return map;
    }

    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    private static partial Regex PreTokenPattern();
}
