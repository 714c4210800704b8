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

/// <summary>A NaN or infinity appeared in a pass; the message names the pass, the layer and the example.</summary>
public class NonFiniteValueException : AtpFastException
{
    public NonFiniteValueException() { }
    public NonFiniteValueException(string message) : base(message) { }
    public NonFiniteValueException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Creates the exception for <paramref name="pass"/> at <paramref name="layer"/> (−1: before the first
    /// block, <c>Layers</c>: the unembedding).</summary>
    public NonFiniteValueException(string pass, int layer, int example, string where)
        : base($"non-finite value (NaN or infinity) in the {pass} pass at {(layer < 0 ? "the embedding" : $"layer {layer}")}, " +
               $"example {example}, {where}")
    {
        Pass = pass;
        Layer = layer;
        Example = example;
    }

    /// <summary>The pass (forward, backward, patched forward) where the value appeared.</summary>
    public string? Pass { get; }

    /// <summary>The layer where it appeared (−1: the embedding).</summary>
    public int Layer { get; }

    /// <summary>The example (sequence, or patched run) where it appeared.</summary>
    public int Example { get; }
}

/// <summary>The metric is undefined for the given prompts (e.g. the normalised logit difference of a pair whose clean
/// and noise logit differences are equal).</summary>
public class MetricUndefinedException : AtpFastException
{
    public MetricUndefinedException() { }
    public MetricUndefinedException(string message) : base(message) { }
    public MetricUndefinedException(string message, Exception inner) : base(message, inner) { }
}
