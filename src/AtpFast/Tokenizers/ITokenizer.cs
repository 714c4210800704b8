namespace AtpFast.Tokenizers;

/// <summary>Maps text to token ids of one model's vocabulary and back.</summary>
public interface ITokenizer
{
    /// <summary>Number of ids; every id is in <c>[0, VocabSize)</c>.</summary>
    int VocabSize { get; }

    /// <summary>Token ids of <paramref name="text"/>, in order.</summary>
    /// <exception cref="TokenizerException">Part of the text has no token; the message names it and its
    /// character offset.</exception>
    int[] Encode(string text);

    /// <summary>The text of a sequence of ids.</summary>
    /// <exception cref="TokenizerException">An id is outside <c>[0, VocabSize)</c>.</exception>
    string Decode(ReadOnlySpan<int> ids);

    /// <summary>The vocabulary entry of one id as stored (for byte-level BPE the byte-to-unicode form, e.g.
    /// "Ġthe"; for byte pieces "&lt;0x41&gt;").</summary>
    /// <exception cref="TokenizerException"><paramref name="id"/> is outside <c>[0, VocabSize)</c>.</exception>
    string TokenText(int id);

    /// <summary>Looks up a vocabulary entry written as <see cref="TokenText"/> returns it.</summary>
    bool TryGetId(string token, out int id);
}
