namespace AtpFast.Tokenizers;

/// <summary>An id ↔ token-string table shared by the tokenizers; ids are dense, <c>[0, Count)</c>.</summary>
internal sealed class Vocabulary
{
    private readonly string[] _tokens;
    private readonly Dictionary<string, int> _ids;

    /// <summary>Builds the table from tokens indexed by id; a duplicate token keeps its first id.</summary>
    public Vocabulary(string[] tokensById)
    {
        _tokens = tokensById;
        _ids = new Dictionary<string, int>(tokensById.Length, StringComparer.Ordinal);
        for (int id = 0; id < tokensById.Length; id++)
        {
            _ids.TryAdd(tokensById[id], id);
        }
    }

    /// <summary>Builds the table from a token → id map whose ids must cover <c>[0, n)</c> exactly.</summary>
    public static Vocabulary FromMap(IReadOnlyDictionary<string, int> idsByToken, string source)
    {
        var tokens = new string?[idsByToken.Count];
        foreach (var (token, id) in idsByToken)
        {
            if (id < 0 || id >= tokens.Length || tokens[id] is not null)
            {
                throw new TokenizerException(
                    $"{source}: token ids must be distinct and cover 0..{tokens.Length - 1}; id {id} (token '{token}') breaks this.");
            }
            tokens[id] = token;
        }
        return new Vocabulary(tokens!);
    }

    public int Count => _tokens.Length;

    public string this[int id] => _tokens[id];

    public bool TryGetId(string token, out int id) => _ids.TryGetValue(token, out id);

    /// <summary>The token of <paramref name="id"/>, or a <see cref="TokenizerException"/> naming the range.</summary>
    public string Checked(int id) =>
        (uint)id < (uint)_tokens.Length
            ? _tokens[id]
            : throw new TokenizerException($"Token id {id} is out of range [0, {_tokens.Length}).");
}
