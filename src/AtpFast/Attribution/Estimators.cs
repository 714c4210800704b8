namespace AtpFast.Attribution;

/// <summary>Per-node scores of one method over a distribution, indexed by <see cref="NodeSpace"/> id (only the
/// selected ids are meaningful). <see cref="Estimate"/> is what the method ranks by (|·|-valued),
/// <see cref="Signed"/> its signed counterpart; <see cref="Depth"/> breaks ties (deeper refinements first).</summary>
internal sealed record NodeScores(double[] Estimate, double[] Signed, double[]? Depth = null);

/// <summary>
/// The AtP family over a distribution of pairs: per batch one backward of the base run (the two runs come from the
/// session), then the backend's attribution products. Estimators put |·| inside the mean over pairs (spec §1):
/// estimate = mean_e |Î_e(n)|, signed = mean_e Î_e(n).
/// GradDrop (spec §4): Σ_l |Î_GD_l| over the L dropped layers, times 1/(L−1). Dropping a layer below node n's layer
/// leaves n's gradient unchanged, so those j terms equal plain AtP and are added as j·|Î_AtP| from the full
/// backward; the pass that drops layer l only recomputes the blocks below l. The QK-fixed terms of AtP* use each
/// pass's own ∂L/∂A.
/// </summary>
internal static class AtpEstimators
{
    public static NodeScores Run(AttributionSession session, bool qkFix, bool gradDrop, CostMeter meter, ProgressReporter progress)
    {
        var backend = session.Backend;
        int layers = session.Config.Layers;
        if (gradDrop && layers < 2)
            throw new InvalidModelInputException("GradDrop needs at least two layers (its score averages over the L − 1 layers other than the node's own)");
        var options = session.Options;
        var abs = new double[session.Space.Count];
        var signed = new double[session.Space.Count];
        var ones = Enumerable.Repeat(1.0, layers).ToArray();
        string stage = gradDrop ? (qkFix ? "AtP* (QK fix + GradDrop)" : "AtP + GradDrop") : qkFix ? "AtP + QK fix" : "AtP";
        progress.Start(stage, session.ChunkCount);
        session.ForEachChunk(meter, chunk =>
        {
            using var full = backend.CreateGradients(chunk.Base);
            backend.Backward(chunk.Base, chunk.Targets, full);
            meter.Add(session.Cost.Backward(session.MetricColumns) * chunk.Count);
            if (!gradDrop)
            {
                Accumulate(session, chunk, full, qkFix, layers - 1, ones, abs, signed);
                meter.Add(session.Cost.Products(layers, qkFix) * chunk.Count);
            }
            else
            {
                // Terms of dropped layers below each node's layer j: j copies of plain (QK-fixed) AtP.
                var below = Enumerable.Range(0, layers).Select(j => j / (layers - 1.0)).ToArray();
                Accumulate(session, chunk, full, qkFix, layers - 1, below, abs, signed);
                meter.Add(session.Cost.Products(layers, qkFix) * chunk.Count);
                using var dropped = backend.CreateGradients(chunk.Base);
                var weight = Enumerable.Repeat(1.0 / (layers - 1), layers).ToArray();
                for (int l = 0; l < layers; l++)
                {
                    options.Cancellation.ThrowIfCancellationRequested();
                    backend.BackwardDroppingLayer(chunk.Base, full, l, dropped);
                    Accumulate(session, chunk, dropped, qkFix, l, weight, abs, signed);
                    meter.Add((session.Cost.GradDropPass(l) + session.Cost.Products(l + 1, qkFix)) * chunk.Count);
                }
            }
            progress.Advance(1);
        });
        for (int i = 0; i < abs.Length; i++)
        {
            abs[i] /= session.PairCount;
            signed[i] /= session.PairCount;
        }
        return new NodeScores(abs, signed);
    }

    private static void Accumulate(AttributionSession session, AttributionSession.Chunk chunk, IGradientCache gradients,
        bool qkFix, int toLayer, double[] weights, double[] abs, double[] signed)
    {
        var request = new AttributionRequest(chunk.Base, chunk.Source, gradients, session.Options.Nodes,
            session.Options.Positions, qkFix, 0, toLayer, weights);
        session.Backend.AccumulateAttribution(request, abs, signed);
    }
}

/// <summary>
/// Exact activation patching over a distribution: each node set patched on every pair, effect = patched metric −
/// unpatched metric, averaged over pairs (the truth is |mean|, spec §1). Runs go to the backend in slices so that
/// progress and cancellation are reported between them.
/// </summary>
internal static class ExactPatching
{
    /// <summary>Patched runs per backend call.</summary>
    private const int Slice = 8192;

    /// <summary>Mean effect of each node set, and the cost of patching each set once per pair (forward-equivalents).</summary>
    public static (double[] MeanEffect, double[] CostPerPair) Effects(AttributionSession session, IReadOnlyList<ReadOnlyMemory<Node>> sets,
        CostMeter meter, ProgressReporter progress, string stage)
    {
        var options = session.Options;
        var sums = new double[sets.Count];
        var costs = new double[sets.Count];
        for (int i = 0; i < sets.Count; i++)
        {
            var plan = PatchPlan.For(sets[i].Span, session.Config.Layers, session.SeqLen, options.Patching.PrefixReuse);
            costs[i] = session.Cost.Patched(plan, session.MetricColumns);
        }
        progress.Start(stage, (long)sets.Count * session.PairCount);
        session.ForEachChunk(meter, chunk =>
        {
            long total = (long)sets.Count * chunk.Count;
            var runs = new PatchRun[(int)Math.Min(Slice, total)];
            var values = new double[runs.Length];
            for (long start = 0; start < total; start += runs.Length)
            {
                options.Cancellation.ThrowIfCancellationRequested();
                int n = (int)Math.Min(runs.Length, total - start);
                for (int k = 0; k < n; k++)
                {
                    long flat = start + k;
                    runs[k] = new PatchRun((int)(flat % chunk.Count), sets[(int)(flat / chunk.Count)]);
                }
                session.Backend.PatchedMetric(chunk.Base, chunk.Source, runs.AsSpan(0, n), chunk.Targets, values.AsSpan(0, n), options.Patching);
                for (int k = 0; k < n; k++)
                {
                    long flat = start + k;
                    int set = (int)(flat / chunk.Count);
                    sums[set] += values[k] - chunk.BaseMetric[runs[k].Example];
                    meter.Add(costs[set]);
                }
                progress.Advance(n);
            }
        });
        for (int i = 0; i < sums.Length; i++) sums[i] /= session.PairCount;
        return (sums, costs);
    }

    /// <summary>Exact patching of every selected node: estimate = |mean effect|, signed = mean effect.</summary>
    public static (NodeScores Scores, double[] CostPerPair) AllNodes(AttributionSession session, int[] ids, CostMeter meter, ProgressReporter progress)
    {
        var nodes = ids.Select(id => session.Space[id]).ToArray();
        var sets = Enumerable.Range(0, nodes.Length).Select(i => (ReadOnlyMemory<Node>)nodes.AsMemory(i, 1)).ToArray();
        var (effects, costs) = Effects(session, sets, meter, progress, "exact patching");
        var estimate = new double[session.Space.Count];
        var signed = new double[session.Space.Count];
        var costById = new double[session.Space.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            estimate[ids[i]] = Math.Abs(effects[i]);
            signed[ids[i]] = effects[i];
            costById[ids[i]] = costs[i];
        }
        return (new NodeScores(estimate, signed), costById);
    }
}

/// <summary>Progress of the current stage, forwarded to the caller's <see cref="IProgress{T}"/> at most ~20 times a second.</summary>
internal sealed class ProgressReporter(IProgress<AttributionProgress>? sink)
{
    private string _stage = "";
    private long _done, _total;
    private long _lastTicks;

    public void Start(string stage, long total)
    {
        _stage = stage;
        _done = 0;
        _total = total;
        sink?.Report(new AttributionProgress(stage, 0, total));
    }

    public void Advance(long units)
    {
        _done += units;
        long now = Environment.TickCount64;
        if (sink is null || (now - _lastTicks < 50 && _done < _total)) return;
        _lastTicks = now;
        sink.Report(new AttributionProgress(_stage, _done, _total));
    }
}
