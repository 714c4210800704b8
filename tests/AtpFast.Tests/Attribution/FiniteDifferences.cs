namespace AtpFast.Tests.Attribution;

/// <summary>
/// Node gradients by central finite differences through exact patching, the reference for every backward: the
/// metric of example e with node n's feature i moved by ±h, ±2h (patched in from a copy of the base run whose
/// value was perturbed) gives ∂L/∂n_i = (−L(2h) + 8L(h) − 8L(−h) + L(−2h))/(12h) (error O(h⁴)). Run it on the
/// fp64 backend. For GradDrop the dropped layer's write is frozen by also patching its attn_out and mlp_out at
/// every position with their (unperturbed) base values: the detached forward has the same value and, for the
/// perturbation, the frozen write.
/// </summary>
internal static class FiniteDifferences
{
    public static Dictionary<(int Example, Node Node), double[]> Gradients(IBackend backend, IRunCache baseRun,
        MetricTargets targets, IReadOnlyList<(int Example, Node Node)> nodes, int droppedLayer = -1, double h = 1e-3)
    {
        var space = new NodeSpace(backend.Weights.Config, baseRun.SeqLen);
        var result = new Dictionary<(int, Node), double[]>();
        double[] offsets = [2 * h, h, -h, -2 * h];
        double[] coefficients = [-1, 8, -8, 1];
        foreach (var group in nodes.GroupBy(n => (n.Node.Type, n.Node.Layer)))
        {
            var members = group.ToArray();
            if (droppedLayer == group.Key.Layer && group.Key.Type is NodeType.AttnOut or NodeType.MlpOut)
                throw new ArgumentException("the frozen write itself has no GradDrop gradient to difference");
            int width = space.Width(group.Key.Type);
            foreach (var m in members) result[m] = new double[width];
            var patches = members.Select(m => (ReadOnlyMemory<Node>)(droppedLayer < 0
                ? new[] { m.Node }
                : new[] { m.Node, new Node(NodeType.AttnOut, droppedLayer, 0, Node.AllPositions), new Node(NodeType.MlpOut, droppedLayer, 0, Node.AllPositions) })).ToArray();
            var runs = members.Select((m, i) => new PatchRun(m.Example, patches[i])).ToArray();
            var values = new double[runs.Length];
            var feature = new double[width];
            for (int i = 0; i < width; i++)
            {
                for (int o = 0; o < offsets.Length; o++)
                {
                    using var source = backend.Clone(baseRun);
                    foreach (var (example, node) in members)
                    {
                        backend.ReadNode(baseRun, example, node, feature);
                        feature[i] += offsets[o];
                        backend.WriteNode(source, example, node, feature);
                    }
                    backend.PatchedMetric(baseRun, source, runs, targets, values);
                    for (int r = 0; r < members.Length; r++) result[members[r]][i] += coefficients[o] * values[r] / (12 * h);
                }
            }
        }
        return result;
    }

    /// <summary>Every per-position node of the selected types in layers 0..<paramref name="toLayer"/>, for every example.</summary>
    public static List<(int Example, Node Node)> AllNodes(ModelConfig c, int batch, int seqLen, NodeTypes types, int toLayer)
    {
        var space = new NodeSpace(c, seqLen);
        var list = new List<(int, Node)>();
        foreach (int id in space.Select(types, PositionMode.PerPosition))
        {
            var node = space[id];
            if (node.Layer > toLayer) continue;
            for (int e = 0; e < batch; e++) list.Add((e, node));
        }
        return list;
    }

    /// <summary>‖a − b‖₂.</summary>
    public static double Distance(double[] a, double[] b) => Math.Sqrt(a.Zip(b, (x, y) => (x - y) * (x - y)).Sum());

    /// <summary>‖a‖₂.</summary>
    public static double Norm(double[] a) => Math.Sqrt(a.Sum(x => x * x));
}
