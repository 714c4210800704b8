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
        double methodCost = meter.Total / session.PairCount;
        var ranking = VerifiedRecall.Rank(ids, scores.Estimate, scores.Depth);

        // Verification and the bound reuse the method's runs: they cost only their patched runs.
        double? [] verified = new double?[session.Space.Count];
        int verify = Math.Min(options.VerifyTop, ranking.Length);
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

        var rows = new AttributionRow[ranking.Length];
        for (int i = 0; i < ranking.Length; i++)
        {
            int id = ranking[i];
            rows[i] = new AttributionRow(id, session.Space[id], options.Method, options.Metric, options.Direction,
                scores.Estimate[id], scores.Signed[id], i + 1, verified[id], exactCosts?[id] ?? methodCost);
        }
        return new AttributionResult(options, backend.Name, backend.Precision, session.Config, session.PairCount, session.SeqLen,
            rows, methodCost, verificationCost, bruteForce, bound, session.BaselineMetric, clock.Elapsed, notes, meaningful: true);
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

    /// <summary>Exhaustive exact patching of <paramref name="ids"/> per pair, from the cost model.</summary>
    internal static double BruteForceCost(AttributionSession session, int[] ids)
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
