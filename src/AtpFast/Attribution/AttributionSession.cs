using System.Globalization;
using AtpFast.Tasks;

namespace AtpFast.Attribution;

/// <summary>Forward-pass equivalents spent by one method, summed over prompt pairs.</summary>
internal sealed class CostMeter
{
    private readonly HashSet<int> _paidChunks = [];

    /// <summary>Total forward-pass equivalents (over all pairs).</summary>
    public double Total { get; private set; }

    public void Add(double forwardEquivalents) => Total += forwardEquivalents;

    /// <summary>True the first time this meter uses chunk <paramref name="chunk"/>'s runs.</summary>
    public bool FirstUse(int chunk) => _paidChunks.Add(chunk);
}

/// <summary>
/// Prompt pairs split into batches, each with its cached base and source runs, metric targets and unpatched
/// metrics. Runs are kept for reuse while they fit in <see cref="MaxCachedBytes"/>; beyond that they are recomputed
/// per pass and the recomputation is charged to the method that needed it. Every pair must have the same token
/// length: per-position nodes must mean the same position in every pair.
/// </summary>
internal sealed class AttributionSession : IDisposable
{
    /// <summary>Runs kept in memory across passes (both runs of every batch) at most this large.</summary>
    public const long MaxCachedBytes = 2L << 30;

    private readonly IReadOnlyList<PromptPair> _pairs;
    private readonly Chunk?[] _cached;
    private readonly bool _cache;

    /// <summary>True when the session keeps its runs (they fit in <see cref="MaxCachedBytes"/>): later passes reuse them.</summary>
    public bool KeepsRuns => _cache;

    public AttributionSession(IBackend backend, IReadOnlyList<PromptPair> pairs, AttributionOptions options)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(pairs);
        Backend = backend;
        Options = options;
        Config = backend.Weights.Config;
        _pairs = pairs;
        Validate(pairs, Config, options);
        SeqLen = pairs[0].Length;
        Space = new NodeSpace(Config, SeqLen);
        Cost = new CostModel(Config, SeqLen);
        MetricColumns = options.Metric.NeedsOnlyTwoColumns() ? 2 : Config.VocabSize;
        int batch = Math.Max(1, Math.Min(options.PairsPerBatch, backend.MaxBatch(SeqLen)));
        ChunkCount = (pairs.Count + batch - 1) / batch;
        ChunkSize = batch;
        _cached = new Chunk?[ChunkCount];
        _cache = 2 * RunBytes(Config, pairs.Count, SeqLen, backend.Precision) <= MaxCachedBytes;
    }

    public IBackend Backend { get; }
    public AttributionOptions Options { get; }
    public ModelConfig Config { get; }
    public int SeqLen { get; }
    public NodeSpace Space { get; }
    public CostModel Cost { get; }
    public int PairCount => _pairs.Count;
    public int ChunkCount { get; }
    public int ChunkSize { get; }

    /// <summary>Columns the metric unembeds (2 for the logit differences, else the vocabulary).</summary>
    public int MetricColumns { get; }

    /// <summary>Mean unpatched metric of the clean and of the noise prompts (set after the first pass).</summary>
    public (double Clean, double Noise)? BaselineMetric { get; private set; }

    /// <summary>Runs <paramref name="action"/> on every batch of pairs in order. The first use of a batch's two
    /// runs by a meter costs two forwards per pair; recomputing runs that were not kept costs them again.</summary>
    public void ForEachChunk(CostMeter meter, Action<Chunk> action)
    {
        for (int i = 0; i < ChunkCount; i++)
        {
            Options.Cancellation.ThrowIfCancellationRequested();
            bool fresh = _cached[i] is null;
            var chunk = _cached[i] ?? CreateChunk(i);
            // A method pays for a batch's two runs on first use, and again whenever they had to be recomputed.
            if (meter.FirstUse(i) | fresh) meter.Add(2 * Cost.Forward * chunk.Count);
            if (_cache) _cached[i] = chunk;
            try
            {
                action(chunk);
            }
            finally
            {
                if (!_cache) chunk.Dispose();
            }
        }
    }

    private Chunk CreateChunk(int index)
    {
        int first = index * ChunkSize, count = Math.Min(ChunkSize, _pairs.Count - first);
        var clean = new int[count * SeqLen];
        var noise = new int[count * SeqLen];
        var answers = new int[count];
        var wrongs = new int[count];
        for (int e = 0; e < count; e++)
        {
            var pair = _pairs[first + e];
            pair.Clean.CopyTo(clean, e * SeqLen);
            pair.Noise.CopyTo(noise, e * SeqLen);
            answers[e] = pair.Answer;
            wrongs[e] = pair.Wrong;
        }
        var cleanRun = Backend.Run(clean, count, SeqLen);
        var noiseRun = Backend.Run(noise, count, SeqLen);
        double[]? ldClean = null, ldNoise = null; // the normalised logit difference's LD_clean and LD_noise
        if (Options.Metric == MetricKind.NormalizedLogitDiff)
        {
            var ld = new MetricTargets(MetricKind.LogitDiff, answers, wrongs);
            ldClean = new double[count];
            ldNoise = new double[count];
            Backend.Metric(cleanRun, ld, ldClean);
            Backend.Metric(noiseRun, ld, ldNoise);
            for (int e = 0; e < count; e++)
            {
                if (!(Math.Abs(ldClean[e] - ldNoise[e]) >= Options.NormalizationGuard))
                {
                    cleanRun.Dispose();
                    noiseRun.Dispose();
                    throw new MetricUndefinedException(string.Create(CultureInfo.InvariantCulture,
                        $"{Where(first + e)}: the normalised logit difference is undefined: LD_clean = {ldClean[e]:G6} and LD_noise = {ldNoise[e]:G6} differ by less than the guard {Options.NormalizationGuard:G3}; drop the pair or use the logit difference"));
                }
            }
        }
        var targets = new MetricTargets(Options.Metric, answers, wrongs, cleanRun, ldNoise, ldClean);
        double[] cleanMetric = new double[count], noiseMetric = new double[count];
        Backend.Metric(cleanRun, targets, cleanMetric);
        Backend.Metric(noiseRun, targets, noiseMetric);
        UpdateBaseline(index, cleanMetric, noiseMetric);
        bool noising = Options.Direction == Direction.Noising;
        return new Chunk(index, first, count, noising ? cleanRun : noiseRun, noising ? noiseRun : cleanRun, targets,
            noising ? cleanMetric : noiseMetric);
    }

    private readonly double[] _baselineSums = new double[2];
    private readonly HashSet<int> _baselineChunks = [];

    private void UpdateBaseline(int chunk, double[] clean, double[] noise)
    {
        if (!_baselineChunks.Add(chunk)) return;
        _baselineSums[0] += clean.Sum();
        _baselineSums[1] += noise.Sum();
        if (_baselineChunks.Count == ChunkCount)
            BaselineMetric = (_baselineSums[0] / PairCount, _baselineSums[1] / PairCount);
    }

    /// <summary>"pair 3 (tasks line 7)" for messages.</summary>
    public string Where(int pairIndex)
    {
        int line = _pairs[pairIndex].Line;
        return line > 0 ? $"pair {pairIndex} (task file line {line})" : $"pair {pairIndex}";
    }

    public void Dispose()
    {
        for (int i = 0; i < _cached.Length; i++)
        {
            _cached[i]?.Dispose();
            _cached[i] = null;
        }
    }

    /// <summary>Checks the pairs before any pass runs.</summary>
    /// <exception cref="InvalidModelInputException">No pairs, unequal lengths, tokens outside the vocabulary.</exception>
    public static void Validate(IReadOnlyList<PromptPair> pairs, ModelConfig config, AttributionOptions options)
    {
        if (pairs.Count == 0) throw new InvalidModelInputException("no prompt pairs: give at least one clean/noise pair");
        if (options.PairsPerBatch < 1) throw new ArgumentOutOfRangeException(nameof(options), "PairsPerBatch must be at least 1");
        for (int i = 0; i < pairs.Count; i++)
        {
            var pair = pairs[i];
            string where = pair.Line > 0 ? $"pair {i} (task file line {pair.Line})" : $"pair {i}";
            if (pair.Clean.Length == 0) throw new InvalidModelInputException($"{where}: empty prompt");
            if (pair.Clean.Length != pair.Noise.Length)
                throw new InvalidModelInputException($"{where}: clean has {pair.Clean.Length} tokens but noise has {pair.Noise.Length}; a pair must have equal token lengths");
            if (pair.Clean.Length > config.MaxSequenceLength)
                throw new InvalidModelInputException($"{where}: {pair.Clean.Length} tokens exceed the model's {config.MaxSequenceLength} positions");
            foreach (var (name, id) in new[] { ("answer", pair.Answer), ("wrong", pair.Wrong) })
            {
                if ((uint)id >= (uint)config.VocabSize)
                    throw new InvalidModelInputException($"{where}: {name} token {id} is outside the vocabulary [0, {config.VocabSize})");
            }
            foreach (var (name, ids) in new[] { ("clean", pair.Clean), ("noise", pair.Noise) })
            {
                for (int t = 0; t < ids.Length; t++)
                {
                    if ((uint)ids[t] >= (uint)config.VocabSize)
                        throw new InvalidModelInputException($"{where}: {name} token {t} has id {ids[t]}, outside the vocabulary [0, {config.VocabSize})");
                }
            }
        }
        var lengths = pairs.Select(p => p.Length).Distinct().Order().ToArray();
        if (lengths.Length > 1)
            throw new InvalidModelInputException(
                $"the prompt pairs have {lengths.Length} token lengths ({string.Join(", ", lengths)}); per-position nodes must mean the same " +
                "position in every pair, so run each length separately (PromptPairs.GroupByLength)");
    }

    /// <summary>Bytes of one cached run of <paramref name="pairs"/> prompts.</summary>
    public static long RunBytes(ModelConfig c, int pairs, int seqLen, Precision precision)
    {
        long rows = (long)pairs * seqLen;
        long perRow = 3L * c.DModel + 2L * c.QueryWidth + 2L * c.KvWidth + (c.GatedMlp ? 3L : 2L) * c.DMlp;
        long values = c.Layers * (rows * perRow + (long)pairs * c.Heads * seqLen * seqLen) + rows * c.DModel + (long)pairs * c.VocabSize;
        return values * (precision == Precision.Float64 ? 8 : 4);
    }

    /// <summary>One batch of pairs: runs, targets and the unpatched metric of the base run.</summary>
    /// <param name="Index">Batch index.</param>
    /// <param name="FirstPair">Index of its first pair.</param>
    /// <param name="Count">Pairs in it.</param>
    /// <param name="Base">The run being patched (clean when noising).</param>
    /// <param name="Source">The run supplying patched values (noise when noising).</param>
    /// <param name="Targets">The metric's targets (KL reference: the clean run).</param>
    /// <param name="BaseMetric">[Count] unpatched metric of the base run.</param>
    public sealed record Chunk(int Index, int FirstPair, int Count, IRunCache Base, IRunCache Source, MetricTargets Targets,
        double[] BaseMetric) : IDisposable
    {
        public void Dispose()
        {
            Base.Dispose();
            Source.Dispose();
        }
    }
}
