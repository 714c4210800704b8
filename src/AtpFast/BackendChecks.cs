namespace AtpFast;

/// <summary>Argument checks every backend applies the same way (same messages, same exception types).</summary>
public static class BackendChecks
{
    /// <summary>Checks a token-id batch.</summary>
    /// <exception cref="InvalidModelInputException">Empty or over-long sequences, a wrong buffer size, ids outside the vocabulary.</exception>
    public static void TokenIds(ModelConfig c, ReadOnlySpan<int> tokenIds, int batch, int seqLen)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (batch < 1) throw new InvalidModelInputException($"batch must be at least 1 (got {batch})");
        if (seqLen < 1) throw new InvalidModelInputException("empty prompt: a sequence needs at least one token");
        if (seqLen > c.MaxSequenceLength)
            throw new InvalidModelInputException($"sequence of {seqLen} tokens is longer than the model's {c.MaxSequenceLength} positions");
        long rows = (long)batch * seqLen;
        if (tokenIds.Length != rows)
            throw new InvalidModelInputException($"token id buffer holds {tokenIds.Length} ids, expected batch·seqLen = {rows}");
        for (int i = 0; i < tokenIds.Length; i++)
        {
            if ((uint)tokenIds[i] >= (uint)c.VocabSize)
                throw new InvalidModelInputException(
                    $"token id {tokenIds[i]} at sequence {i / seqLen}, position {i % seqLen} is outside the vocabulary [0, {c.VocabSize})");
        }
    }

    /// <summary>Two runs that are patched or compared must have the same batch and length.</summary>
    /// <exception cref="InvalidModelInputException">They differ.</exception>
    public static void SameShape(IRunCache a, IRunCache b, string what)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Batch != b.Batch || a.SeqLen != b.SeqLen)
            throw new InvalidModelInputException(
                $"{what}: runs of {a.Batch}×{a.SeqLen} and {b.Batch}×{b.SeqLen} tokens differ in shape (clean and noise prompts must have equal token length)");
    }

    /// <summary>Checks metric targets against a run.</summary>
    public static void Targets(ModelConfig c, MetricTargets targets, IRunCache run)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(run);
        if (targets.Batch != run.Batch)
            throw new ArgumentException($"metric targets describe {targets.Batch} examples, the run has {run.Batch}");
        targets.Validate(c.VocabSize);
        if (targets.KlReference is { } reference) SameShape(reference, run, "KL reference");
    }

    /// <summary>Checks a single-position node read or written through a buffer of <paramref name="length"/> features.</summary>
    public static void Node(ModelConfig c, int batch, int seqLen, int example, Node node, int length)
    {
        if ((uint)example >= (uint)batch) throw new ArgumentOutOfRangeException(nameof(example));
        if (node.IsAllPositions) throw new ArgumentException("read and write single-position nodes, not @* aggregates", nameof(node));
        var space = new NodeSpace(c, seqLen);
        space.Id(node); // range check
        if (length != space.Width(node.Type))
            throw new ArgumentException($"node {node.Name} has {space.Width(node.Type)} features, the buffer {length}");
    }

    /// <summary>Offset of a node's features within a row of its site array (head slice, neuron, or 0).</summary>
    public static int FeatureOffset(ModelConfig c, Node node) => node.Type switch
    {
        <= NodeType.HeadOutput => node.Index * c.HeadDim,
        NodeType.Neuron => node.Index,
        _ => 0,
    };

    /// <summary>Checks an attribution request's score arrays, layer range and weights.</summary>
    public static NodeSpace Attribution(ModelConfig c, AttributionRequest request, IGradientCache gradients, int sumLength, int signedLength)
    {
        ArgumentNullException.ThrowIfNull(request);
        SameShape(request.BaseRun, request.SourceRun, "attribution");
        if (gradients.Batch != request.BaseRun.Batch || gradients.SeqLen != request.BaseRun.SeqLen)
            throw new ArgumentException("gradients shaped for another run");
        var space = new NodeSpace(c, request.BaseRun.SeqLen);
        if (sumLength != space.Count || signedLength != space.Count)
            throw new ArgumentException($"score arrays must hold NodeSpace.Count = {space.Count} entries");
        if (request.FromLayer < 0 || request.ToLayer > gradients.ValidThroughLayer || request.FromLayer > request.ToLayer)
            throw new ArgumentOutOfRangeException(nameof(request), $"layers {request.FromLayer}..{request.ToLayer} outside the gradients' 0..{gradients.ValidThroughLayer}");
        if (request.LayerWeights.Length != c.Layers || request.LayerWeights.Any(w => !(w >= 0)))
            throw new ArgumentException($"LayerWeights must hold {c.Layers} non-negative weights");
        return space;
    }
}
