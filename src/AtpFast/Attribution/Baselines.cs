namespace AtpFast.Attribution;

/// <summary>
/// Random-subset patching (spec §5–6): m subsets S_i of a node universe, each node in a subset independently with
/// probability p, each subset patched jointly on every pair (I(S_i) = mean effect over pairs). Per node the draws
/// split into those with it (+) and without it (−).
/// </summary>
internal static class Subsampling
{
    /// <summary>Per-node statistics of the draws: counts, means and sample variances with (+) and without (−) it.</summary>
    public sealed record Statistics(int[] CountWith, int[] CountWithout, double[] MeanWith, double[] MeanWithout,
        double[] VarianceWith, double[] VarianceWithout);

    /// <summary>Draws subsets of <paramref name="universe"/> until <paramref name="draws"/> are taken or the next would
    /// exceed <paramref name="budget"/> (forward-equivalents over all pairs, on top of what the meter already holds).</summary>
    public static Statistics Draw(AttributionSession session, int[] universe, int draws, double p, double budget, Random rng,
        CostMeter meter, ProgressReporter progress, string stage)
    {
        if (!(p > 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), "the inclusion probability must be in (0, 1)");
        var members = new List<int[]>();
        var sets = new List<ReadOnlyMemory<Node>>();
        double planned = 0;
        var scratch = new List<int>();
        while (members.Count < draws)
        {
            scratch.Clear();
            for (int i = 0; i < universe.Length; i++)
            {
                if (rng.NextDouble() < p) scratch.Add(i);
            }
            if (scratch.Count == 0) scratch.Add(rng.Next(universe.Length));
            var nodes = scratch.Select(i => session.Space[universe[i]]).ToArray();
            var plan = PatchPlan.For(nodes, session.Config.Layers, session.SeqLen, session.Options.Patching.PrefixReuse);
            double cost = session.Cost.Patched(plan, session.MetricColumns) * session.PairCount;
            if (planned + cost > budget && members.Count > 0) break;
            planned += cost;
            members.Add([.. scratch]);
            sets.Add(nodes);
        }
        var (effects, _) = ExactPatching.Effects(session, sets, meter, progress, stage);
        return Summarise(universe.Length, members, effects);
    }

    /// <summary>Means and variances per node from the draws' memberships and effects.</summary>
    public static Statistics Summarise(int universe, IReadOnlyList<int[]> members, IReadOnlyList<double> effects)
    {
        var inDraw = new bool[universe];
        int[] nWith = new int[universe], nWithout = new int[universe];
        double[] sumWith = new double[universe], sumWithout = new double[universe];
        double[] sqWith = new double[universe], sqWithout = new double[universe];
        for (int d = 0; d < members.Count; d++)
        {
            Array.Clear(inDraw);
            foreach (int i in members[d]) inDraw[i] = true;
            double y = effects[d];
            for (int i = 0; i < universe; i++)
            {
                if (inDraw[i]) { nWith[i]++; sumWith[i] += y; sqWith[i] += y * y; }
                else { nWithout[i]++; sumWithout[i] += y; sqWithout[i] += y * y; }
            }
        }
        double[] meanWith = new double[universe], meanWithout = new double[universe];
        double[] varWith = new double[universe], varWithout = new double[universe];
        for (int i = 0; i < universe; i++)
        {
            (meanWith[i], varWith[i]) = MeanVariance(nWith[i], sumWith[i], sqWith[i]);
            (meanWithout[i], varWithout[i]) = MeanVariance(nWithout[i], sumWithout[i], sqWithout[i]);
        }
        return new Statistics(nWith, nWithout, meanWith, meanWithout, varWith, varWithout);
    }

    private static (double Mean, double Variance) MeanVariance(int n, double sum, double squares)
    {
        if (n == 0) return (double.NaN, double.NaN);
        double mean = sum / n;
        return (mean, n < 2 ? double.NaN : Math.Max(0, (squares - n * mean * mean) / (n - 1)));
    }

    /// <summary>The Subsampling method: score = |ī+ − ī−| (0 for a node never drawn or never left out).</summary>
    public static NodeScores Method(AttributionSession session, int[] ids, double budget, CostMeter meter, ProgressReporter progress)
    {
        var options = session.Options;
        double drawBudget = (budget - 2 * session.Cost.Forward) * session.PairCount;
        var stats = Draw(session, ids, int.MaxValue, options.InclusionProbability, drawBudget, new Random(options.Seed), meter, progress, "subsampling");
        var estimate = new double[session.Space.Count];
        var signed = new double[session.Space.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            double diff = stats.MeanWith[i] - stats.MeanWithout[i];
            if (double.IsNaN(diff)) diff = 0;
            estimate[ids[i]] = Math.Abs(diff);
            signed[ids[i]] = diff;
        }
        return new NodeScores(estimate, signed);
    }
}

/// <summary>Blocks (spec §6): the selected nodes in id order cut into contiguous blocks, each patched jointly; a node
/// scores its block's |effect|. The number of blocks is the budget left after the two runs (a block costs at most one
/// forward per pair).</summary>
internal static class Blocks
{
    public static NodeScores Method(AttributionSession session, int[] ids, double budget, CostMeter meter, ProgressReporter progress)
    {
        int blocks = (int)Math.Clamp(Math.Floor(budget - 2 * session.Cost.Forward), 1, ids.Length);
        int size = (ids.Length + blocks - 1) / blocks;
        var sets = new List<ReadOnlyMemory<Node>>();
        for (int start = 0; start < ids.Length; start += size)
            sets.Add(ids.Skip(start).Take(size).Select(id => session.Space[id]).ToArray());
        var (effects, _) = ExactPatching.Effects(session, sets, meter, progress, $"blocks of {size}");
        var estimate = new double[session.Space.Count];
        var signed = new double[session.Space.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            estimate[ids[i]] = Math.Abs(effects[i / size]);
            signed[ids[i]] = effects[i / size];
        }
        return new NodeScores(estimate, signed);
    }
}

/// <summary>
/// Hierarchical (spec §6): the selected nodes grouped by (type, layer), each group patched jointly; then, best-first,
/// the groups with the largest |effect| are split into up to 8 contiguous children (by id: index ranges, then single
/// heads or neurons across positions, then single nodes) and the children patched, while the budget lasts and the
/// group's |effect| exceeds the threshold. A node scores the |effect| of the deepest group evaluated that holds it.
/// </summary>
internal static class Hierarchical
{
    private const int Branching = 8;

    public static NodeScores Method(AttributionSession session, int[] ids, double budget, CostMeter meter, ProgressReporter progress)
    {
        var options = session.Options;
        double total = budget * session.PairCount;
        var estimate = new double[session.Space.Count];
        var signed = new double[session.Space.Count];
        var depth = new double[session.Space.Count];
        var queue = new PriorityQueue<Group, double>();
        var roots = ids.Select((id, i) => (id, i)).GroupBy(x => (session.Space[x.id].Type, session.Space[x.id].Layer))
            .Select(g => new Group(g.First().i, g.Count(), 0)).ToList();
        Evaluate(roots);
        while (queue.Count > 0)
        {
            var batch = new List<Group>();
            while (queue.Count > 0 && batch.Count < Branching && queue.TryPeek(out var top, out _))
            {
                if (Math.Abs(top.Effect) <= options.HierarchicalThreshold) break;
                batch.Add(queue.Dequeue());
            }
            var children = batch.SelectMany(Split).ToList();
            if (children.Count == 0) break;
            double cost = children.Sum(c => Cost(c)) * session.PairCount;
            if (meter.Total + cost > total) break;
            Evaluate(children);
        }
        return new NodeScores(estimate, signed, depth);

        double Cost(Group g) => session.Cost.Patched(PatchPlan.For(Nodes(g).Span, session.Config.Layers, session.SeqLen,
            options.Patching.PrefixReuse), session.MetricColumns);

        ReadOnlyMemory<Node> Nodes(Group g) => ids.Skip(g.Start).Take(g.Count).Select(id => session.Space[id]).ToArray();

        void Evaluate(List<Group> groups)
        {
            var (effects, _) = ExactPatching.Effects(session, groups.Select(Nodes).ToList(), meter, progress,
                $"hierarchical depth {groups.Max(g => g.Depth)}");
            for (int k = 0; k < groups.Count; k++)
            {
                var g = groups[k] with { Effect = effects[k] };
                for (int i = g.Start; i < g.Start + g.Count; i++)
                {
                    estimate[ids[i]] = Math.Abs(g.Effect);
                    signed[ids[i]] = g.Effect;
                    depth[ids[i]] = g.Depth;
                }
                if (g.Count > 1) queue.Enqueue(g, -Math.Abs(g.Effect));
            }
        }

        static IEnumerable<Group> Split(Group g)
        {
            int size = (g.Count + Branching - 1) / Branching;
            for (int start = 0; start < g.Count; start += size)
                yield return new Group(g.Start + start, Math.Min(size, g.Count - start), g.Depth + 1);
        }
    }

    /// <summary>Nodes ids[Start .. Start + Count) at tree depth <see cref="Depth"/>, with its measured effect.</summary>
    private readonly record struct Group(int Start, int Count, int Depth, double Effect = 0);
}
