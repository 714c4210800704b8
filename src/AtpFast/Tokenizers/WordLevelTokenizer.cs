using System.Text;
using System.Text.RegularExpressions;

namespace AtpFast.Tokenizers;

/// <summary>
/// Whole-word tokenizer of the IOI demo model. The vocabulary file is a JSON array of token strings (id =
/// index). Text splits into tokens by the regex <c>\w+|[^\w\s]</c>: runs of word characters, and each other
/// non-space character on its own ("store," → "store", ","). A token missing from the vocabulary is an error;
/// there is no fallback.
/// </summary>
/// <remarks>
/// Decode rule: tokens are joined by single spaces, except that no space is written before a token made of one
/// of the characters <c>, . ! ? ; : '</c>, nor after an apostrophe token (so possessives and contractions such
/// as "Mary's" come back whole). Hence decode(encode(t)) == t for text written with single spaces between
/// words, no space before those punctuation marks and no single-quoted phrases; other spacing (newlines,
/// double spaces, "( x", "' quoted '") is normalised.
/// </remarks>
public sealed partial class WordLevelTokenizer : ITokenizer
{
    private const string AttachedPunctuation = ",.!?;:'";
    private readonly Vocabulary _vocab;

    /// <summary>Builds the tokenizer from tokens indexed by id.</summary>
    public WordLevelTokenizer(IReadOnlyList<string> tokensById)
    {
        _vocab = new Vocabulary([.. tokensById]);
    }

    /// <summary>Parses a vocabulary given as JSON text: an array of token strings, id = index.</summary>
    /// <param name="json">The vocabulary JSON text.</param>
    /// <param name="source">Names the origin in error messages (a path or a resource name).</param>
    public static WordLevelTokenizer FromJson(string json, string source)
    {
        using var document = JsonFiles.Parse(json, source);
        return new WordLevelTokenizer(JsonFiles.StringArray(document.RootElement, source));
    }

    /// <summary>Loads a vocabulary file (a JSON array of token strings).</summary>
    public static WordLevelTokenizer FromFile(string path) => FromJson(JsonFiles.ReadText(path), path);

    /// <inheritdoc />
    public int VocabSize => _vocab.Count;

    /// <inheritdoc />
    public int[] Encode(string text)
    {
        var ids = new List<int>();
        foreach (Match match in TokenPattern().Matches(text))
        {
            if (!_vocab.TryGetId(match.Value, out int id))
            {
                throw new TokenizerException(
                    $"Word '{match.Value}' at character offset {match.Index} is not in the vocabulary ({_vocab.Count} tokens).");
            }
            ids.Add(id);
        }
        return [.. ids];
    }

    /// <inheritdoc />
    public string Decode(ReadOnlySpan<int> ids)
    {
        var text = new StringBuilder();
        bool previousWasApostrophe = false;
        foreach (int id in ids)
        {
            string token = _vocab.Checked(id);
            bool attaches = token.Length == 1 && AttachedPunctuation.Contains(token[0], StringComparison.Ordinal);
            if (text.Length > 0 && !attaches && !previousWasApostrophe)
            {
                text.Append(' ');
            }
            text.Append(token);
            previousWasApostrophe = token == "'";
        }
        return text.ToString();
    }

    /// <inheritdoc />
    public string TokenText(int id) => _vocab.Checked(id);

    /// <inheritdoc />
    public bool TryGetId(string token, out int id) => _vocab.TryGetId(token, out id);

    [GeneratedRegex(@"\w+|[^\w\s]")]
    private static partial Regex TokenPattern();
}
