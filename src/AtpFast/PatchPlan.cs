namespace AtpFast;

/// <summary>
/// Where an exactly patched run starts, shared by every backend and by the cost accounting so that the reported
/// cost is what the backends execute. The run starts at the earliest patched layer and position (prefix reuse);
/// a single node that acts at one position only (q, z, attn_out, neuron, mlp_out) changes its own block at that
/// position alone (<see cref="OnePosition"/>); such a node in the last block before the last position cannot
/// reach the metric (<see cref="NoEffect"/>: the run would reproduce the base run, so it is not executed).
/// </summary>
/// <param name="Layer">First block recomputed.</param>
/// <param name="Position">First position recomputed (earlier positions are the base run's).</param>
/// <param name="OnePosition">The first block runs only at <paramref name="Position"/>.</param>
/// <param name="NoEffect">The patch provably leaves the metric unchanged.</param>
public readonly record struct PatchPlan(int Layer, int Position, bool OnePosition, bool NoEffect)
{
    /// <summary>The plan of patching <paramref name="nodes"/> jointly in a model of <paramref name="layers"/> blocks
    /// on <paramref name="seqLen"/> tokens.</summary>
    /// <param name="nodes">At least one node.</param>
    /// <param name="layers">Blocks of the model.</param>
    /// <param name="seqLen">Tokens per sequence.</param>
    /// <param name="prefixReuse">False plans a full recomputation (layer 0, position 0).</param>
    public static PatchPlan For(ReadOnlySpan<Node> nodes, int layers, int seqLen, bool prefixReuse = true)
    {
        if (nodes.IsEmpty) throw new ArgumentException("a patched run patches at least one node", nameof(nodes));
        if (!prefixReuse) return new PatchPlan(0, 0, false, false);
        int layer = int.MaxValue, position = int.MaxValue;
        foreach (var node in nodes)
        {
            layer = Math.Min(layer, node.Layer);
            position = Math.Min(position, node.IsAllPositions ? 0 : node.Position);
        }
        bool one = nodes.Length == 1 && !nodes[0].IsAllPositions && nodes[0].Type is NodeType.Query or NodeType.HeadOutput
            or NodeType.AttnOut or NodeType.Neuron or NodeType.MlpOut;
        return new PatchPlan(layer, position, one, one && layer == layers - 1 && position < seqLen - 1);
    }
}
