using System.Diagnostics;
using AtpFast.Cpu;
using AtpFast.Tasks;

namespace AtpFast.Attribution;

/// <summary>
/// The public entry point: prompt pairs and a metric in, a ranked table of nodes out.
/// <code>
/// var model = OnnxImporter.Load("model.onnx");
/// var pairs = TaskFile.Parse(File.ReadAllText("pairs.jsonl"), TokenizerLoader.FromDirectory("."), model.Config.VocabSize);
/// var result = Attribution.Run(model.Weights, pairs, new AttributionOptions { VerifyTop = 20 });
/// </code>
/// </summary>
public static class Attribution
{
    /// <summary>Runs <paramref name="options"/>' method on the CPU backend (fp32, all cores).</summary>
    /// <exception cref="InvalidModelInputException">No pairs, unequal token lengths, ids outside the vocabulary,
    /// pairs of several lengths, or no node selected.</exception>
    /// <exception cref="MetricUndefinedException">The normalised logit difference of a pair is undefined.</exception>
    /// <exception cref="NonFiniteValueException">A NaN or infinity appeared in a pass (the message names it).</exception>
    public static AttributionResult Run(ModelWeights weights, IReadOnlyList<PromptPair> pairs, AttributionOptions? options = null)
    {
        using var backend = new CpuBackend(weights);
        return Run(backend, pairs, options);
    }

    /// <summary>Runs <paramref name="options"/>' method on <paramref name="backend"/>.</summary>
    /// <inheritdoc cref="Run(ModelWeights, IReadOnlyList{PromptPair}, AttributionOptions?)"/>
    public static AttributionResult Run(IBackend backend, IReadOnlyList<PromptPair> pairs, AttributionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        options ??= new AttributionOptions();
        var clock = Stopwatch.StartNew();
        using var session = new AttributionSession(backend, pairs, options);
        var ids = Selected(session);
        var notes = new List<string>();
        double bruteForce = BruteForceCost(session, ids);
        if (!IsMeaningful(options.Method, options.Metric, options.Direction, out string? why))
        {
            notes.Add(why!);
            return new AttributionResult(options, backend.Name, backend.Precision, session.Config, session.PairCount, session.SeqLen,
                [], 0, 0, bruteForce, null, null, clock.Elapsed, notes, meaningful: false);
        }

        var meter = new CostMeter();
        var progress = new ProgressReporter(options.Progress);
        var (scores, exactCosts) = Score(session, options.Method, ids, options.Budget, meter, progress);
        return Finish(session, ids, scores, exactCosts, meter.Total / session.PairCount, bruteForce, meter, progress,
            () => session.BaselineMetric, options, () => clock.Elapsed, notes);
    }

    /// <summary>
    /// Everything of a run after the method's scores: ranks <paramref name="ids"/>, verifies the top
    /// <see cref="AttributionOptions.VerifyTop"/> by exact patching over all of <paramref name="session"/>'s pairs, computes the
    /// false-negative bound and assembles the result. Used by <see cref="Run(IBackend, IReadOnlyList{PromptPair}, AttributionOptions?)"/>
    /// and by the CLI's work units, which compute the scores in pieces and finish once over the whole distribution.
    /// </summary>
    /// <param name="session">The whole distribution, with the options of the run.</param>
    /// <param name="ids">The selected nodes.</param>
    /// <param name="scores">The method's scores, indexed by id.</param>
    /// <param name="exactCosts">Each node's own cost per pair (exact patching), else null: every row costs <paramref name="methodCost"/>.</param>
    /// <param name="methodCost">The method's cost per pair.</param>
    /// <param name="bruteForce">Exact patching of every selected node, per pair (<see cref="BruteForceCost(AttributionSession, int[], double[])"/>).</param>
    /// <param name="methodMeter">The meter that paid for the method on this session (it has paid for every batch's two runs);
    /// null when the method ran elsewhere, in which case a meter is set up as if it had.</param>
    /// <param name="progress">Reports verification and the bound.</param>
    /// <param name="baseline">Read once everything is done: the unpatched metrics the result reports.</param>
    /// <param name="resultOptions">The options the result reports.</param>
    /// <param name="elapsed">Read once everything is done: the run's time.</param>
    /// <param name="notes">The run's notes so far; the bound's note and then <paramref name="laterNotes"/> are added.</param>
    /// <param name="laterNotes">Notes after the bound's.</param>
    internal static AttributionResult Finish(AttributionSession session, int[] ids, NodeScores scores, double[]? exactCosts,
        double methodCost, double bruteForce, CostMeter? methodMeter, ProgressReporter progress, Func<(double Clean, double Noise)?> baseline,
        AttributionOptions resultOptions, Func<TimeSpan> elapsed, List<string> notes, IEnumerable<string>? laterNotes = null)
    {
        var options = session.Options;
        var ranking = VerifiedRecall.Rank(ids, scores.Estimate, scores.Depth);
        int verify = Math.Min(options.VerifyTop, ranking.Length);
        var meter = methodMeter ?? (verify > 0 || options.BoundAlpha is not null ? PaidMeter(session) : new CostMeter());

        // Verification and the bound reuse the method's runs: they cost only their patched runs.
        double?[] verified = new double?[session.Space.Count];
        double before = meter.Total;
        if (verify > 0)
        {
            if (options.Method == AttributionMethod.Exact)
            {
                foreach (int id in ranking.Take(verify)) verified[id] = scores.Signed[id];
            }
            else
            {
                var top = ranking.Take(verify).ToArray();
                var sets = top.Select(id => (ReadOnlyMemory<Node>)new[] { session.Space[id] }).ToList();
                var (effects, _) = ExactPatching.Effects(session, sets, meter, progress, $"verifying the top {verify}");
                for (int i = 0; i < top.Length; i++) verified[top[i]] = effects[i];
            }
        }
        double verificationCost = (meter.Total - before) / session.PairCount;
        var bound = options.BoundAlpha is null ? null : FalseNegativeBound.Compute(session, ranking, verify, meter, progress);
        if (bound is not null && double.IsPositiveInfinity(bound.Theta)) notes.Add(bound.Describe());
        if (laterNotes is not null) notes.AddRange(laterNotes);

        var rows = new AttributionRow[ranking.Length];
        for (int i = 0; i < ranking.Length; i++)
        {
            int id = ranking[i];
            rows[i] = new AttributionRow(id, session.Space[id], options.Method, options.Metric, options.Direction,
                scores.Estimate[id], scores.Signed[id], i + 1, verified[id], exactCosts?[id] ?? methodCost);
        }
        var backend = session.Backend;
        return new AttributionResult(resultOptions, backend.Name, backend.Precision, session.Config, session.PairCount, session.SeqLen,
            rows, methodCost, verificationCost, bruteForce, bound, baseline(), elapsed(), notes, meaningful: true);
    }

    /// <summary>A meter for a session whose method ran elsewhere and paid for every batch's two runs: like the method's own
    /// meter, it charges verification and the bound only their patched runs while the runs stay cached (warming the cache
    /// here, uncharged), and the recomputed runs when they do not.</summary>
    private static CostMeter PaidMeter(AttributionSession session)
    {
        var meter = new CostMeter();
        if (session.KeepsRuns)
            session.ForEachChunk(meter, _ => { });
        else
            for (int i = 0; i < session.ChunkCount; i++) meter.FirstUse(i);
        return meter;
    }

    /// <summary>False, with the reason, when a method cannot say anything for a metric and direction: the gradient of
    /// KL(clean ‖ patched) is zero at the clean run, so in the noising direction every AtP-family estimate is rounding
    /// noise.</summary>
    public static bool IsMeaningful(AttributionMethod method, MetricKind metric, Direction direction, out string? why)
    {
        if (metric == MetricKind.Kl && direction == Direction.Noising && method.IsAtpFamily())
        {
            why = $"{method.Name()} is meaningless for KL(clean ‖ patched) in the noising direction: the metric's gradient is zero " +
                  "at the clean run (KL is at its minimum there), so every estimate would be rounding noise; no ranking was produced. " +
                  "Use exact patching or the subset baselines, the denoising direction, or another metric.";
            return false;
        }
        why = null;
        return true;
    }

    internal static int[] Selected(AttributionSession session)
    {
        var ids = session.Space.Select(session.Options.Nodes, session.Options.Positions);
        if (ids.Length == 0) throw new InvalidModelInputException("no node selected: choose at least one node type");
        return ids;
    }

    /// <summary>Exhaustive exact patching of the nodes <paramref name="options"/> selects, per pair, from the cost model
    /// (no pass runs): the <see cref="AttributionResult.BruteForceCost"/> a run with these options reports.</summary>
    /// <exception cref="InvalidModelInputException">The pairs cannot be run, or no node is selected.</exception>
    internal static double BruteForceCost(IBackend backend, IReadOnlyList<PromptPair> pairs, AttributionOptions options)
    {
        using var session = new AttributionSession(backend, pairs, options);
        return BruteForceCost(session, Selected(session));
    }

    /// <summary>Exhaustive exact patching of <paramref name="ids"/> per pair, from the cost model; when
    /// <paramref name="costById"/> is given it receives each node's own patched run per pair (indexed by id).</summary>
    internal static double BruteForceCost(AttributionSession session, int[] ids, double[]? costById = null)
    {
        // A single node's plan depends only on its layer, position and whether it acts at one position.
        var cache = new Dictionary<(int, int, bool), double>();
        double total = 2 * session.Cost.Forward;
        foreach (int id in ids)
        {
            var node = session.Space[id];
            var plan = PatchPlan.For([node], session.Config.Layers, session.SeqLen, session.Options.Patching.PrefixReuse);
            var key = (plan.Layer, plan.Position, plan.OnePosition);
            if (!cache.TryGetValue(key, out double cost)) cache[key] = cost = session.Cost.Patched(plan, session.MetricColumns);
            if (costById is not null) costById[id] = cost;
            total += cost;
        }
        return total;
    }

    /// <summary>The scores of one method (and, for exact patching, each node's own cost per pair).</summary>
    internal static (NodeScores Scores, double[]? ExactCosts) Score(AttributionSession session, AttributionMethod method, int[] ids,
        double budget, CostMeter meter, ProgressReporter progress) => method switch
    {
        AttributionMethod.Exact => ExactPatching.AllNodes(session, ids, meter, progress),
        AttributionMethod.Atp => (AtpEstimators.Run(session, qkFix: false, gradDrop: false, meter, progress), null),
        AttributionMethod.AtpQk => (AtpEstimators.Run(session, qkFix: true, gradDrop: false, meter, progress), null),
        AttributionMethod.AtpGd => (AtpEstimators.Run(session, qkFix: false, gradDrop: true, meter, progress), null),
        AttributionMethod.AtpStar => (AtpEstimators.Run(session, qkFix: true, gradDrop: true, meter, progress), null),
        AttributionMethod.Subsampling => (Subsampling.Method(session, ids, budget, meter, progress), null),
        AttributionMethod.Blocks => (Blocks.Method(session, ids, budget, meter, progress), null),
        AttributionMethod.Hierarchical => (Hierarchical.Method(session, ids, budget, meter, progress), null),
        _ => throw new ArgumentOutOfRangeException(nameof(method)),
    };
}
