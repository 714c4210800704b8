namespace AtpFast.Tokenizers;

/// <summary>A tokenizer could not be loaded, could not encode a text (the message names the unknown word or
/// character and its character offset) or was asked to decode an id outside <c>[0, VocabSize)</c>.</summary>
public class TokenizerException : AtpFastException
{
    public TokenizerException() { }
    public TokenizerException(string message) : base(message) { }
    public TokenizerException(string message, Exception inner) : base(message, inner) { }
}
