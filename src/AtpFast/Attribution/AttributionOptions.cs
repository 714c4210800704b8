namespace AtpFast.Attribution;

/// <summary>The attribution methods. Text names (CLI, result files): exact, atp, atp+qk, atp+gd, atp*, subsampling,
/// blocks, hierarchical.</summary>
public enum AttributionMethod
{
    /// <summary>Exact activation patching of every node (the ground truth and the cost ceiling).</summary>
    Exact,
    /// <summary>Attribution patching: (n_source − n_base)·∂L/∂n.</summary>
    Atp,
    /// <summary>AtP with the QK fix for queries and keys.</summary>
    AtpQk,
    /// <summary>AtP with GradDrop.</summary>
    AtpGd,
    /// <summary>AtP*: the QK fix and GradDrop (the default).</summary>
    AtpStar,
    /// <summary>Random subsets patched jointly; a node's score is the difference of the mean effect with and without it.</summary>
    Subsampling,
    /// <summary>Contiguous blocks of nodes patched jointly; a node's score is its block's |effect|.</summary>
    Blocks,
    /// <summary>Groups of a tree (type and layer, then ranges of heads/neurons/positions) patched jointly, refined
    /// best-first where |effect| is largest.</summary>
    Hierarchical,
}

/// <summary>Text names of <see cref="AttributionMethod"/>.</summary>
public static class AttributionMethods
{
    private static readonly string[] Names = ["exact", "atp", "atp+qk", "atp+gd", "atp*", "subsampling", "blocks", "hierarchical"];

    /// <summary>The name used in result files.</summary>
    public static string Name(this AttributionMethod method) => Names[(int)method];

    /// <summary>True for the gradient-based estimators.</summary>
    public static bool IsAtpFamily(this AttributionMethod method) => method is AttributionMethod.Atp or AttributionMethod.AtpQk
        or AttributionMethod.AtpGd or AttributionMethod.AtpStar;

    /// <summary>Parses a method name.</summary>
    /// <exception cref="FormatException">Unknown name.</exception>
    public static AttributionMethod Parse(string text)
    {
        int i = Array.IndexOf(Names, text.Trim().ToLowerInvariant());
        return i >= 0 ? (AttributionMethod)i : throw new FormatException(
            $"unknown method '{text}' (expected one of {string.Join(", ", Names)})");
    }
}

/// <summary>What progress a long attribution reports: a stage, units done of a total, and the nodes scored.</summary>
/// <param name="Stage">What is running (e.g. "exact patching", "GradDrop").</param>
/// <param name="Done">Units finished in this stage.</param>
/// <param name="Total">Units in this stage.</param>
public readonly record struct AttributionProgress(string Stage, long Done, long Total);

/// <summary>Settings of one attribution run. Every field has a sensible default; the result records them all.</summary>
public sealed record AttributionOptions
{
    /// <summary>The method (default AtP*).</summary>
    public AttributionMethod Method { get; init; } = AttributionMethod.AtpStar;

    /// <summary>Node types scored (default q, k, v, z, neurons, resid_pre).</summary>
    public NodeTypes Nodes { get; init; } = NodeTypes.Default;

    /// <summary>Per-position nodes (default), <c>@*</c> aggregates, or both.</summary>
    public PositionMode Positions { get; init; } = PositionMode.PerPosition;

    /// <summary>The metric (default logit difference).</summary>
    public MetricKind Metric { get; init; } = MetricKind.LogitDiff;

    /// <summary>Noising (default) or denoising.</summary>
    public Direction Direction { get; init; } = Direction.Noising;

    /// <summary>Verify the top K nodes of the ranking by exact patching (default 0: none).</summary>
    public int VerifyTop { get; init; }

    /// <summary>When set, compute the subsampling false-negative bound at confidence 1 − α over the unverified nodes.</summary>
    public double? BoundAlpha { get; init; }

    /// <summary>Random subsets drawn for the bound (default 200).</summary>
    public int BoundDraws { get; init; } = 200;

    /// <summary>Probability that a node is in a subset, for the bound and for Subsampling (default 0.1).</summary>
    public double InclusionProbability { get; init; } = 0.1;

    /// <summary>Budget of Subsampling, Blocks and Hierarchical in forward-pass equivalents per prompt pair, including
    /// the base and source runs (default 100).</summary>
    public double Budget { get; init; } = 100;

    /// <summary>Hierarchical: only groups whose |effect| exceeds this are refined (default 0).</summary>
    public double HierarchicalThreshold { get; init; }

    /// <summary>Prompt pairs run together (default 16); lower it for large models.</summary>
    public int PairsPerBatch { get; init; } = 16;

    /// <summary>Normalised logit difference: pairs with |LD_clean − LD_noise| below this are rejected (default 1e-3).</summary>
    public double NormalizationGuard { get; init; } = 1e-3;

    /// <summary>Seed of the random draws (default 0).</summary>
    public int Seed { get; init; }

    /// <summary>Exact patching switches (for measurements; results do not depend on them).</summary>
    public PatchingOptions Patching { get; init; }

    /// <summary>Receives progress of long stages.</summary>
    public IProgress<AttributionProgress>? Progress { get; init; }

    /// <summary>Stops the run (an <see cref="OperationCanceledException"/> between passes).</summary>
    public CancellationToken Cancellation { get; init; }
}
