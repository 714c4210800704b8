using System.Diagnostics;
using System.Globalization;
using AtpFast.Tasks;

namespace AtpFast.Attribution;

/// <summary>One method's evaluation against exhaustive exact patching.</summary>
/// <param name="Label">e.g. "atp*" or "subsampling (budget 70)".</param>
/// <param name="Method">The method.</param>
/// <param name="Budget">The budget of a baseline (forward-equivalents per pair), null for the others.</param>
/// <param name="Cost">The method's own cost per pair.</param>
/// <param name="Curve">Cost of verified recall for K = 1..Curve.Length, per pair.</param>
/// <param name="RecallAt20">Share of the true top 20 in the method's top 20.</param>
/// <param name="Elapsed">Wall-clock time of the method (its passes only).</param>
public sealed record MethodEvaluation(string Label, AttributionMethod Method, double? Budget, double Cost, double[] Curve,
    double RecallAt20, TimeSpan Elapsed);

/// <summary>The false-negative bound of AtP*'s ranking checked against the truth: θ* and the largest true |effect| among
/// the nodes it claims to bound.</summary>
/// <param name="Bound">The bound.</param>
/// <param name="LargestUnverified">max |mean effect| over the unverified nodes.</param>
/// <param name="LargestUnverifiedNode">Where that maximum is.</param>
public sealed record BoundCheck(FalseNegativeBound Bound, double LargestUnverified, Node LargestUnverifiedNode)
{
    /// <summary>True when no unverified node's true |effect| reaches θ*.</summary>
    public bool Holds => LargestUnverified < Bound.Theta;
}

/// <summary>Every method's cost of verified recall on one distribution, with the ground truth it is measured against.</summary>
public sealed class EvaluationResult
{
    internal EvaluationResult(AttributionOptions options, string backend, int pairs, int seqLen, int nodes, int nonzero,
        double bruteForce, TimeSpan truthElapsed, IReadOnlyList<MethodEvaluation> methods, IReadOnlyList<(Node Node, double Effect)> top,
        BoundCheck? bound)
    {
        Bound = bound;
        Options = options;
        Backend = backend;
        Pairs = pairs;
        SeqLen = seqLen;
        Nodes = nodes;
        NonzeroNodes = nonzero;
        BruteForceCost = bruteForce;
        TruthElapsed = truthElapsed;
        Methods = methods;
        TrueTop = top;
    }

    public AttributionOptions Options { get; }
    public string Backend { get; }
    public int Pairs { get; }
    public int SeqLen { get; }

    /// <summary>Nodes in the selection.</summary>
    public int Nodes { get; }

    /// <summary>Nodes whose exact mean effect is not exactly zero.</summary>
    public int NonzeroNodes { get; }

    /// <summary>Exhaustive exact patching per pair (what the ground truth cost).</summary>
    public double BruteForceCost { get; }

    public TimeSpan TruthElapsed { get; }
    public IReadOnlyList<MethodEvaluation> Methods { get; }

    /// <summary>The true top nodes with their signed mean effects.</summary>
    public IReadOnlyList<(Node Node, double Effect)> TrueTop { get; }

    /// <summary>The false-negative bound after verifying AtP*'s top K, against the truth (when asked for).</summary>
    public BoundCheck? Bound { get; }

    /// <summary>K values the tables report.</summary>
    public static readonly int[] TableK = [1, 2, 5, 10, 20, 50, 100, 200, 500];

    /// <summary>A markdown table: method, cost, recall of the top 20, cost of verified recall at several K.</summary>
    public void WriteMarkdown(TextWriter w)
    {
        ArgumentNullException.ThrowIfNull(w);
        var ks = TableK.Where(k => k <= Methods[0].Curve.Length).ToArray();
        w.WriteLine($"| method | own cost | recall of the true top 20 | {string.Join(" | ", ks.Select(k => $"K={k}"))} | wall s |");
        w.WriteLine($"|---|---|---|{string.Concat(ks.Select(_ => "---|"))}---|");
        w.WriteLine(F($"| brute force (exhaustive exact patching) | {BruteForceCost:F1} | 1.00 | {string.Join(" | ", ks.Select(_ => BruteForceCost.ToString("F1", CultureInfo.InvariantCulture)))} | {TruthElapsed.TotalSeconds:F1} |"));
        foreach (var m in Methods)
            w.WriteLine(F($"| {m.Label} | {m.Cost:F1} | {m.RecallAt20:F2} | {string.Join(" | ", ks.Select(k => m.Curve[k - 1].ToString("F1", CultureInfo.InvariantCulture)))} | {m.Elapsed.TotalSeconds:F2} |"));
    }

    /// <summary>CSV: method, K, cost per pair (one line per point; the brute-force line is constant).</summary>
    public void WriteCurvesCsv(TextWriter w)
    {
        ArgumentNullException.ThrowIfNull(w);
        w.WriteLine("method,k,cost_forward_equivalents_per_pair");
        int n = Methods[0].Curve.Length;
        for (int k = 1; k <= n; k++) w.WriteLine(F($"brute force,{k},{BruteForceCost:R}"));
        foreach (var m in Methods)
            for (int k = 1; k <= m.Curve.Length; k++) w.WriteLine(F($"{m.Label},{k},{m.Curve[k - 1]:R}"));
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// The evaluation of spec §7: exhaustive exact patching of the selected nodes gives the truth c(n) = |mean effect|;
/// each method's ranking is verified in its order and its cost to recall the true top K is its own cost plus the
/// verifications up to the last true top-K node (<see cref="VerifiedRecall"/>). The methods share the session's
/// cached runs but each is charged its own passes. K runs up to the number of nodes with a nonzero effect.
/// </summary>
public static class AttributionEvaluation
{
    public static EvaluationResult Run(IBackend backend, IReadOnlyList<PromptPair> pairs, AttributionOptions options,
        IReadOnlyList<(AttributionMethod Method, double? Budget)> methods, int maxK = 1000)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(methods);
        using var session = new AttributionSession(backend, pairs, options);
        var ids = Attribution.Selected(session);
        var progress = new ProgressReporter(options.Progress);
        var clock = Stopwatch.StartNew();
        var (truth, verifyCost) = ExactPatching.AllNodes(session, ids, new CostMeter(), progress);
        var truthElapsed = clock.Elapsed;
        var truthRanking = VerifiedRecall.Rank(ids, truth.Estimate);
        int nonzero = ids.Count(id => truth.Estimate[id] != 0);
        int k = Math.Max(1, Math.Min(maxK, nonzero));
        double bruteForce = 2 * session.Cost.Forward + ids.Sum(id => verifyCost[id]);
        var results = new List<MethodEvaluation>();
        int[]? atpStarRanking = null; // the bound check below verifies AtP*'s ranking: reuse it when AtP* was evaluated
        foreach (var (method, budget) in methods)
        {
            if (!Attribution.IsMeaningful(method, options.Metric, options.Direction, out _)) continue;
            var meter = new CostMeter();
            clock.Restart();
            var (scores, _) = Attribution.Score(session, method, ids, budget ?? options.Budget, meter, progress);
            var elapsed = clock.Elapsed;
            var ranking = VerifiedRecall.Rank(ids, scores.Estimate, scores.Depth);
            if (method == AttributionMethod.AtpStar) atpStarRanking = ranking;
            double cost = meter.Total / session.PairCount;
            string label = budget is { } b ? F($"{method.Name()} (budget {b:G4})") : method.Name();
            results.Add(new MethodEvaluation(label, method, budget, cost,
                VerifiedRecall.Curve(truthRanking, ranking, verifyCost, cost, k),
                VerifiedRecall.RecallAtK(truthRanking, ranking, 20), elapsed));
        }
        var top = truthRanking.Take(20).Select(id => (session.Space[id], truth.Signed[id])).ToList();
        BoundCheck? check = null;
        if (options.BoundAlpha is not null && Attribution.IsMeaningful(AttributionMethod.AtpStar, options.Metric, options.Direction, out _))
        {
            var meter = new CostMeter();
            var ranking = atpStarRanking ?? VerifiedRecall.Rank(ids,
                Attribution.Score(session, AttributionMethod.AtpStar, ids, options.Budget, meter, progress).Scores.Estimate);
            int verify = Math.Min(options.VerifyTop, ranking.Length);
            var bound = FalseNegativeBound.Compute(session, ranking, verify, meter, progress);
            int worst = ranking.Skip(verify).DefaultIfEmpty(ranking[0]).MaxBy(id => truth.Estimate[id]);
            check = new BoundCheck(bound, verify < ranking.Length ? truth.Estimate[worst] : 0, session.Space[worst]);
        }
        return new EvaluationResult(options, backend.Name, session.PairCount, session.SeqLen, ids.Length, nonzero, bruteForce,
            truthElapsed, results, top, check);
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
