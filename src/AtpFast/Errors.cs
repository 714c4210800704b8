namespace AtpFast;

/// <summary>Base of every error AtpFast raises on purpose; the message names the problem and where.</summary>
public class AtpFastException : Exception
{
    public AtpFastException() { }
    public AtpFastException(string message) : base(message) { }
    public AtpFastException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Input the engine cannot run on: token ids out of range, empty or over-long prompts,
/// mismatched buffer sizes, prompt pairs of unequal length.</summary>
public class InvalidModelInputException : AtpFastException
{
    public InvalidModelInputException() { }
    public InvalidModelInputException(string message) : base(message) { }
    public InvalidModelInputException(string message, Exception inner) : base(message, inner) { }
}
