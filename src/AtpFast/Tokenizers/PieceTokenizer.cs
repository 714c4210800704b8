using System.Globalization;
using System.Text;

namespace AtpFast.Tokenizers;

/// <summary>
/// The llama2.c / sentencepiece-style piece vocabulary (e.g. stories260K: 512 pieces; id 0 <c>&lt;unk&gt;</c>,
/// 1 BOS, 2 EOS, 3..258 byte pieces <c>&lt;0x00&gt;</c>..<c>&lt;0xFF&gt;</c>, then merged pieces where a leading
/// space is a plain ' '). Encoding follows llama2.c's <c>encode</c>: optional BOS, a dummy-prefix space, each
/// character as its piece or else its UTF-8 bytes as byte pieces, then repeatedly merge the adjacent pair whose
/// concatenation is a piece with the best score (leftmost on ties). The files carry no scores, so the score of
/// a piece is −id: the vocabulary order is the merge order.
/// </summary>
/// <remarks>
/// Decoding follows llama2.c's <c>decode</c>: byte pieces become their byte, a piece right after BOS loses its
/// leading space (the dummy prefix), and the bytes are read as UTF-8. BOS and EOS themselves decode to nothing.
/// Hence <c>Decode(Encode(t, addBos: true)) == t</c>; without BOS the decoded text keeps the dummy-prefix
/// space, exactly as llama2.c prints generated tokens.
/// </remarks>
public sealed class PieceTokenizer : ITokenizer
{
    /// <summary>Id of the beginning-of-sequence token.</summary>
    public const int BosId = 1;

    /// <summary>Id of the end-of-sequence token.</summary>
    public const int EosId = 2;

    private readonly Vocabulary _vocab;
    private readonly int?[] _byteOfPiece;

    /// <summary>Builds the tokenizer from pieces indexed by id.</summary>
    /// <param name="pieces">At least BOS and EOS (ids 1, 2); byte pieces are found by their text.</param>
    /// <param name="addBos">Whether <see cref="Encode(string)"/> starts with <see cref="BosId"/>.</param>
    public PieceTokenizer(IReadOnlyList<string> pieces, bool addBos = false)
    {
        if (pieces.Count <= EosId)
        {
            throw new TokenizerException($"A piece vocabulary needs at least {EosId + 1} pieces (unk, BOS, EOS); got {pieces.Count}.");
        }
        _vocab = new Vocabulary([.. pieces]);
        _byteOfPiece = new int?[pieces.Count];
        for (int b = 0; b < 256; b++)
        {
            if (_vocab.TryGetId(BytePiece((byte)b), out int id))
            {
                _byteOfPiece[id] = b;
            }
        }
        AddBos = addBos;
    }

    /// <summary>Loads the "vocab" array of a stories260K-style <c>reference.json</c>.</summary>
    public static PieceTokenizer FromReferenceJson(string path, bool addBos = false)
    {
        using var document = JsonFiles.Parse(JsonFiles.ReadText(path), path);
        if (document.RootElement.ValueKind != System.Text.Json.JsonValueKind.Object
            || !document.RootElement.TryGetProperty("vocab", out var vocab))
        {
            throw new TokenizerException($"{path}: no \"vocab\" array of pieces.");
        }
        return new PieceTokenizer(JsonFiles.StringArray(vocab, $"{path} vocab"), addBos);
    }

    /// <summary>Whether <see cref="Encode(string)"/> starts with <see cref="BosId"/>.</summary>
    public bool AddBos { get; }

    /// <inheritdoc />
    public int VocabSize => _vocab.Count;

    /// <inheritdoc />
    public int[] Encode(string text) => Encode(text, AddBos);

    /// <summary>Token ids of <paramref name="text"/>, led by <see cref="BosId"/> when <paramref name="addBos"/>.</summary>
    /// <exception cref="TokenizerException">A character has no piece and its bytes no byte piece.</exception>
    public int[] Encode(string text, bool addBos)
    {
        var symbols = new List<string>(text.Length + 1);
        if (text.Length > 0)
        {
            symbols.Add(" ");
        }
        Span<byte> utf8 = stackalloc byte[4];
        int offset = 0;
        foreach (Rune rune in text.EnumerateRunes())
        {
            string character = rune.ToString();
            if (_vocab.TryGetId(character, out _))
            {
                symbols.Add(character);
            }
            else
            {
                int count = rune.EncodeToUtf8(utf8);
                for (int i = 0; i < count; i++)
                {
                    string piece = BytePiece(utf8[i]);
                    symbols.Add(_vocab.TryGetId(piece, out _)
                        ? piece
                        : throw new TokenizerException(
                            $"Character '{character}' (U+{rune.Value:X4}) at character offset {offset} has no piece and byte piece {piece} is missing."));
                }
            }
            offset += rune.Utf16SequenceLength;
        }
        if (symbols.Count > 0 && !_vocab.TryGetId(symbols[0], out _))
        {
            throw new TokenizerException("The vocabulary has neither a ' ' piece nor a <0x20> byte piece for the dummy prefix.");
        }

        // Only real pieces may merge; byte pieces' "<0x..>" text never concatenates into a piece.
        var merged = PairMerger.Merge(symbols, (string left, string right, out int rank) => _vocab.TryGetId(left + right, out rank));
        var ids = new int[merged.Count + (addBos ? 1 : 0)];
        int at = 0;
        if (addBos)
        {
            ids[at++] = BosId;
        }
        foreach (string piece in merged)
        {
            _vocab.TryGetId(piece, out ids[at++]);
        }
        return ids;
    }

    /// <inheritdoc />
    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>(ids.Length * 4);
        int previous = -1;
        foreach (int id in ids)
        {
            string piece = _vocab.Checked(id);
            if (id is BosId or EosId)
            {
                // Control tokens print nothing.
            }
            else if (_byteOfPiece[id] is int b)
            {
                bytes.Add((byte)b);
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(previous == BosId && piece.StartsWith(' ') ? piece[1..] : piece));
            }
            previous = id;
        }
        return Encoding.UTF8.GetString([.. bytes]);
    }

    /// <inheritdoc />
    public string TokenText(int id) => _vocab.Checked(id);

    /// <inheritdoc />
    public bool TryGetId(string token, out int id) => _vocab.TryGetId(token, out id);

    private static string BytePiece(byte b) => string.Create(CultureInfo.InvariantCulture, $"<0x{b:X2}>");
}
