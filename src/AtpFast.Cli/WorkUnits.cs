using System.Diagnostics;
using System.Globalization;
using System.Text;
using AtpFast.Attribution;
using AtpFast.Tasks;

namespace AtpFast.Cli;

/// <summary>How the per-unit numbers of a method combine into the distribution's.</summary>
internal enum MergeKind
{
    /// <summary>Estimators (the AtP family): estimate = mean_e |Î_e| and signed = mean_e Î_e are means over pairs, so the
    /// distribution's value is the pair-weighted mean of the units' values.</summary>
    MeanOfEstimates,
    /// <summary>Exact patching and Blocks: the signed mean effect is a mean over pairs (pair-weighted mean of the units'),
    /// and the estimate is its absolute value, taken after combining.</summary>
    AbsOfMeanEffect,
    /// <summary>Subsampling and Hierarchical: their random subsets and refinements depend on effects averaged over the whole
    /// distribution, so they run as one unit and cannot be sharded.</summary>
    Whole,
}

/// <summary>
/// The work of one run cut into units: blocks of <see cref="UnitPairs"/> consecutive prompt pairs, and for exact
/// patching also slices of <see cref="SliceNodes"/> consecutive selected nodes (unit u = pair block u / slices, node
/// slice u mod slices). The plan depends only on the settings, never on the shard count, so every shard split computes
/// the same units and a merge adds them up in the same order as a single run does.
/// </summary>
internal sealed class UnitPlan
{
    public UnitPlan(RunSettings settings, NodeSpace space)
    {
        var method = settings.Options.Method;
        Ids = space.Select(settings.Options.Nodes, settings.Options.Positions);
        if (Ids.Length == 0) throw new AtpFastException("--nodes: no node selected");
        Kind = method.IsAtpFamily() ? MergeKind.MeanOfEstimates
            : method is AttributionMethod.Exact or AttributionMethod.Blocks ? MergeKind.AbsOfMeanEffect
            : MergeKind.Whole;
        Pairs = settings.Pairs;
        UnitPairs = Kind == MergeKind.Whole ? Pairs : Math.Clamp(settings.UnitPairs, 1, Pairs);
        PairBlocks = (Pairs + UnitPairs - 1) / UnitPairs;
        SliceNodes = method == AttributionMethod.Exact ? Math.Clamp(settings.SliceNodes, 1, Ids.Length) : Ids.Length;
        NodeSlices = (Ids.Length + SliceNodes - 1) / SliceNodes;
    }

    /// <summary>The selected node ids, in id order.</summary>
    public int[] Ids { get; }

    public MergeKind Kind { get; }
    public int Pairs { get; }
    public int UnitPairs { get; }
    public int PairBlocks { get; }
    public int SliceNodes { get; }
    public int NodeSlices { get; }
    public int Count => PairBlocks * NodeSlices;

    public int Block(int unit) => unit / NodeSlices;
    public int Slice(int unit) => unit % NodeSlices;

    public (int First, int Count) PairRange(int unit)
    {
        int first = Block(unit) * UnitPairs;
        return (first, Math.Min(UnitPairs, Pairs - first));
    }

    public (int Start, int Count) NodeRange(int unit)
    {
        int start = Slice(unit) * SliceNodes;
        return (start, Math.Min(SliceNodes, Ids.Length - start));
    }

    /// <summary>Node-pair scores one unit produces (for the nodes/s rate).</summary>
    public long Work(int unit) => (long)NodeRange(unit).Count * PairRange(unit).Count;
}

/// <summary>What one unit produced: per node of its slice the estimate and signed value over its pairs, its cost
/// (forward-pass equivalents summed over its pairs), the unpatched metrics and where it ran.</summary>
internal sealed record UnitResult(
    int Index,
    int Pairs,
    double[] Estimate,
    double[] Signed,
    double[]? Depth,
    double Cost,
    double? BaselineClean,
    double? BaselineNoise,
    double Seconds,
    string Backend)
{
    private const string Magic = "ATPFAST-UNIT-1";
    private const string End = "END";

    public static string FileName(int unit) => string.Create(CultureInfo.InvariantCulture, $"unit-{unit:D6}.bin");

    /// <summary>Writes the unit atomically (temporary file, then rename).</summary>
    public void Write(string directory, string unitHash)
    {
        Directory.CreateDirectory(directory);
        string path = Path.Combine(directory, FileName(Index));
        string temp = path + $".tmp-{Environment.ProcessId}";
        try
        {
            using (var w = new BinaryWriter(File.Create(temp), Encoding.UTF8))
            {
                w.Write(Magic);
                w.Write(unitHash);
                w.Write(Index);
                w.Write(Pairs);
                w.Write(Estimate.Length);
                w.Write(Cost);
                w.Write(BaselineClean ?? double.NaN);
                w.Write(BaselineNoise ?? double.NaN);
                w.Write(Seconds);
                w.Write(Backend);
                w.Write(Depth is not null);
                foreach (double v in Estimate) w.Write(v);
                foreach (double v in Signed) w.Write(v);
                if (Depth is not null) foreach (double v in Depth) w.Write(v);
                w.Write(End);
            }
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>Reads unit <paramref name="unit"/> from <paramref name="directory"/>; null when it is absent, of
    /// another run (hash) or damaged.</summary>
    public static UnitResult? TryRead(string directory, int unit, string unitHash, UnitPlan plan)
    {
        string path = Path.Combine(directory, FileName(unit));
        if (!File.Exists(path)) return null;
        try
        {
            using var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
            if (r.ReadString() != Magic || r.ReadString() != unitHash || r.ReadInt32() != unit) return null;
            int pairs = r.ReadInt32(), nodes = r.ReadInt32();
            if (pairs != plan.PairRange(unit).Count || nodes != plan.NodeRange(unit).Count) return null;
            double cost = r.ReadDouble(), clean = r.ReadDouble(), noise = r.ReadDouble(), seconds = r.ReadDouble();
            string backend = r.ReadString();
            bool depth = r.ReadBoolean();
            double[] Read()
            {
                var a = new double[nodes];
                for (int i = 0; i < nodes; i++) a[i] = r.ReadDouble();
                return a;
            }
            var estimate = Read();
            var signed = Read();
            var depths = depth ? Read() : null;
            if (r.ReadString() != End) return null;
            return new UnitResult(unit, pairs, estimate, signed, depths, cost, double.IsNaN(clean) ? null : clean,
                double.IsNaN(noise) ? null : noise, seconds, backend);
        }
        catch (Exception e) when (e is IOException or FormatException or ArgumentException or OverflowException or UnauthorizedAccessException)
        {
            return null; // damaged or unreadable: the unit is computed again
        }
    }
}

/// <summary>Runs units and combines them into the result a single run produces.</summary>
internal static class UnitRunner
{
    /// <summary>Computes unit <paramref name="unit"/> of <paramref name="plan"/>.</summary>
    public static UnitResult Execute(IBackend backend, IReadOnlyList<PromptPair> pairs, RunSettings settings, UnitPlan plan, int unit,
        IProgress<AttributionProgress>? progress, CancellationToken cancellation)
    {
        var clock = Stopwatch.StartNew();
        var (first, count) = plan.PairRange(unit);
        var (start, nodes) = plan.NodeRange(unit);
        var options = settings.Options with { VerifyTop = 0, BoundAlpha = null, Progress = progress, Cancellation = cancellation };
        var subset = pairs.Skip(first).Take(count).ToArray();
        using var session = new AttributionSession(backend, subset, options);
        var meter = new CostMeter();
        var reporter = new ProgressReporter(progress);
        var ids = plan.Ids.AsSpan(start, nodes).ToArray();
        NodeScores scores = options.Method == AttributionMethod.Exact
            ? ExactPatching.AllNodes(session, ids, meter, reporter).Scores
            : AtpFast.Attribution.Attribution.Score(session, options.Method, ids, options.Budget, meter, reporter).Scores;
        double cost = meter.Total;
        // Every node slice of a pair block re-runs the block's two cached runs; the method needs them once.
        if (plan.Slice(unit) > 0) cost -= 2 * session.Cost.Forward * count;
        var estimate = new double[nodes];
        var signed = new double[nodes];
        var depth = scores.Depth is null ? null : new double[nodes];
        for (int i = 0; i < nodes; i++)
        {
            estimate[i] = scores.Estimate[ids[i]];
            signed[i] = scores.Signed[ids[i]];
            if (depth is not null) depth[i] = scores.Depth![ids[i]];
        }
        var baseline = session.BaselineMetric;
        return new UnitResult(unit, count, estimate, signed, depth, cost, baseline?.Clean, baseline?.Noise, clock.Elapsed.TotalSeconds, backend.Name);
    }

    /// <summary>
    /// Combines every unit (in unit order, whatever shard computed it) and finishes the run as
    /// <see cref="AtpFast.Attribution.Attribution.Run(IBackend, IReadOnlyList{PromptPair}, AttributionOptions?)"/> does:
    /// ranks the nodes, verifies the top K by exact patching over all pairs and computes the false-negative bound over
    /// all pairs (both need the whole distribution, so they run here, once).
    /// </summary>
    public static AttributionResult Finish(IBackend backend, IReadOnlyList<PromptPair> pairs, RunSettings settings, UnitPlan plan,
        IReadOnlyList<UnitResult> units, IProgress<AttributionProgress>? progress, CancellationToken cancellation)
    {
        var clock = Stopwatch.StartNew();
        if (units.Count != plan.Count || units.Select((u, i) => u.Index != i).Any(x => x))
            throw new InvalidOperationException("units missing or out of order");
        var options = settings.Options with { Progress = progress, Cancellation = cancellation };
        using var session = new AttributionSession(backend, pairs, options);
        var space = session.Space;
        var estimate = new double[space.Count];
        var signed = new double[space.Count];
        double[]? depth = null;
        double methodCost = 0, clean = 0, noise = 0;
        bool haveBaseline = true;
        foreach (var u in units)
        {
            var (start, nodes) = plan.NodeRange(u.Index);
            // Pair-weighted means; with one pair block the weight is exactly 1 and the values pass through unchanged.
            double w = plan.Kind == MergeKind.Whole ? 1.0 : (double)u.Pairs / plan.Pairs;
            for (int i = 0; i < nodes; i++)
            {
                int id = plan.Ids[start + i];
                estimate[id] += w * u.Estimate[i];
                signed[id] += w * u.Signed[i];
            }
            if (u.Depth is not null)
            {
                depth ??= new double[space.Count];
                for (int i = 0; i < nodes; i++) depth[plan.Ids[start + i]] = u.Depth[i];
            }
            methodCost += u.Cost;
            if (plan.Slice(u.Index) == 0)
            {
                if (u.BaselineClean is { } c && u.BaselineNoise is { } n)
                {
                    clean += w * c;
                    noise += w * n;
                }
                else
                {
                    haveBaseline = false;
                }
            }
        }
        if (plan.Kind == MergeKind.AbsOfMeanEffect)
        {
            foreach (int id in plan.Ids) estimate[id] = Math.Abs(signed[id]);
        }
        methodCost /= plan.Pairs;

        // Per-node exact costs come from the same cost model as brute force (exact patching's rows cost their own run).
        double[]? exactCosts = options.Method == AttributionMethod.Exact ? new double[space.Count] : null;
        double bruteForce = AtpFast.Attribution.Attribution.BruteForceCost(session, plan.Ids, exactCosts);
        var backends = units.Select(u => u.Backend).Distinct().ToList();
        string[] laterNotes = backends.Count > 1 || backends[0] != backend.Name
            ? [$"units were computed on {string.Join(", ", backends)}; verification and the bound on {backend.Name}"]
            : [];
        // The method's runs were paid for by the units (methodMeter: null): verification and the bound are charged as in
        // Attribution.Run.
        return AtpFast.Attribution.Attribution.Finish(session, plan.Ids, new NodeScores(estimate, signed, depth), exactCosts, methodCost,
            bruteForce, methodMeter: null, new ProgressReporter(progress), () => haveBaseline ? (clean, noise) : null,
            options with { Progress = null, Cancellation = default }, () => TimeSpan.FromSeconds(units.Sum(u => u.Seconds)) + clock.Elapsed,
            notes: [], laterNotes);
    }
}
