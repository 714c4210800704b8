using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using AtpFast.Attribution;
using AtpFast.Tasks;

namespace AtpFast.Cli;

/// <summary>
/// Everything that defines one <c>atpfast run</c>: the model, the prompt pairs, the attribution options and how the
/// work is cut into units. Written as <c>run.json</c> next to the units so that <c>--resume</c> and <c>merge</c> can
/// check that units belong together (<see cref="UnitHash"/>) and redo the finishing step (verification, bound).
/// </summary>
internal sealed record RunSettings
{
    public const string Format = "atpfast-run/1";

    public required string ModelPath { get; init; }
    public required string ModelSha256 { get; init; }
    public string? TokenizerPath { get; init; }
    public required string TasksPath { get; init; }

    /// <summary>SHA-256 of the selected pairs' token ids, answers and wrong tokens (text and id task files that
    /// tokenise the same give the same hash).</summary>
    public required string PairsSha256 { get; init; }

    public required int Pairs { get; init; }
    public required int SeqLen { get; init; }

    /// <summary>The token length selected with <c>--length</c> (null: the file has one length).</summary>
    public int? Length { get; init; }

    public required AttributionOptions Options { get; init; }

    /// <summary>Prompt pairs per work unit (the granularity of sharding and resume).</summary>
    public required int UnitPairs { get; init; }

    /// <summary>Exact patching: nodes per work unit.</summary>
    public required int SliceNodes { get; init; }

    public required string Backend { get; init; }
    public int Threads { get; init; }

    /// <summary>Which part of the units this invocation computes.</summary>
    public Shard Shard { get; init; } = Shard.Whole;

    /// <summary>Hash of every setting the units' numbers depend on (not verification, the bound's alpha and draws,
    /// the backend or the shard): units with equal hashes can be combined.</summary>
    public string UnitHash
    {
        get
        {
            var o = Options;
            string text = string.Join("\n", Format, ModelSha256, PairsSha256, Pairs, SeqLen, o.Method.Name(), Node.FormatTypes(o.Nodes),
                o.Positions, o.Metric.Name(), o.Direction.Name(), R(o.InclusionProbability), R(o.Budget), R(o.HierarchicalThreshold),
                o.PairsPerBatch, R(o.NormalizationGuard), o.Seed, o.Patching.DisablePrefixReuse, UnitPairs, SliceNodes);
            return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..32];
        }
    }

    private static string R(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>SHA-256 of the pairs (ids, answers, wrongs; not the line numbers).</summary>
    public static string HashPairs(IReadOnlyList<PromptPair> pairs)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var four = new byte[4];
        void Add(int v)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(four, v);
            hash.AppendData(four);
        }
        foreach (var p in pairs)
        {
            Add(p.Length);
            foreach (int t in p.Clean) Add(t);
            foreach (int t in p.Noise) Add(t);
            Add(p.Answer);
            Add(p.Wrong);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    public string ToJson() => JsonSerializer.Serialize(new Manifest
    {
        Format = Format,
        UnitHash = UnitHash,
        Model = ModelPath,
        ModelSha256 = ModelSha256,
        Tokenizer = TokenizerPath,
        Tasks = TasksPath,
        PairsSha256 = PairsSha256,
        Pairs = Pairs,
        SeqLen = SeqLen,
        Length = Length,
        Method = Options.Method.Name(),
        Nodes = Node.FormatTypes(Options.Nodes),
        Positions = Options.Positions.ToString(),
        Metric = Options.Metric.Name(),
        Direction = Options.Direction.Name(),
        VerifyTop = Options.VerifyTop,
        Bound = Options.BoundAlpha,
        BoundDraws = Options.BoundDraws,
        InclusionProbability = Options.InclusionProbability,
        Budget = Options.Budget,
        HierarchicalThreshold = Options.HierarchicalThreshold,
        PairsPerBatch = Options.PairsPerBatch,
        NormalizationGuard = Options.NormalizationGuard,
        Seed = Options.Seed,
        UnitPairs = UnitPairs,
        SliceNodes = SliceNodes,
        Backend = Backend,
        Threads = Threads,
        ShardIndex = Shard.Index,
        ShardCount = Shard.Count,
    }, SummaryJson.Options);

    /// <summary>Reads a run.json written by <see cref="ToJson"/>.</summary>
    /// <exception cref="AtpFastException">Unreadable, malformed or of another format (the message names the file).</exception>
    public static RunSettings Read(string path)
    {
        Manifest m;
        try
        {
            m = JsonSerializer.Deserialize<Manifest>(File.ReadAllText(path), SummaryJson.Options)
                ?? throw new AtpFastException($"{path}: empty run description");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            throw new AtpFastException($"{path}: cannot read the run description ({e.Message})", e);
        }
        if (m.Format != Format) throw new AtpFastException($"{path}: not an atpfast run description (format '{m.Format}', expected '{Format}')");
        try
        {
            var settings = new RunSettings
            {
                ModelPath = m.Model!,
                ModelSha256 = m.ModelSha256!,
                TokenizerPath = m.Tokenizer,
                TasksPath = m.Tasks!,
                PairsSha256 = m.PairsSha256!,
                Pairs = m.Pairs,
                SeqLen = m.SeqLen,
                Length = m.Length,
                Options = new AttributionOptions
                {
                    Method = AttributionMethods.Parse(m.Method!),
                    Nodes = Node.ParseTypes(m.Nodes!),
                    Positions = Enum.Parse<PositionMode>(m.Positions!),
                    Metric = MetricNames.ParseMetric(m.Metric!),
                    Direction = MetricNames.ParseDirection(m.Direction!),
                    VerifyTop = m.VerifyTop,
                    BoundAlpha = m.Bound,
                    BoundDraws = m.BoundDraws,
                    InclusionProbability = m.InclusionProbability,
                    Budget = m.Budget,
                    HierarchicalThreshold = m.HierarchicalThreshold,
                    PairsPerBatch = m.PairsPerBatch,
                    NormalizationGuard = m.NormalizationGuard,
                    Seed = m.Seed,
                },
                UnitPairs = m.UnitPairs,
                SliceNodes = m.SliceNodes,
                Backend = m.Backend ?? "auto",
                Threads = m.Threads,
                Shard = new Shard(m.ShardIndex, m.ShardCount),
            };
            if (settings.UnitHash != m.UnitHash)
                throw new AtpFastException($"{path}: the run description was edited (its settings no longer match its unit hash)");
            return settings;
        }
        catch (Exception e) when (e is FormatException or ArgumentException or NullReferenceException)
        {
            throw new AtpFastException($"{path}: malformed run description ({e.Message})", e);
        }
    }

    /// <summary>The settings that must agree between two runs for their units to combine, named one per line when they
    /// differ (for messages).</summary>
    public List<string> Differences(RunSettings other)
    {
        var d = new List<string>();
        if (ModelSha256 != other.ModelSha256) d.Add($"model sha256 {ModelSha256[..12]}… vs {other.ModelSha256[..12]}…");
        if (PairsSha256 != other.PairsSha256) d.Add("prompt pairs (a different task file or length group)");
        var (a, b) = (Options, other.Options);
        if (a.Method != b.Method) d.Add($"--method {a.Method.Name()} vs {b.Method.Name()}");
        if (a.Nodes != b.Nodes) d.Add($"--nodes {Node.FormatTypes(a.Nodes)} vs {Node.FormatTypes(b.Nodes)}");
        if (a.Positions != b.Positions) d.Add($"--positions {a.Positions} vs {b.Positions}");
        if (a.Metric != b.Metric) d.Add($"--metric {a.Metric.Name()} vs {b.Metric.Name()}");
        if (a.Direction != b.Direction) d.Add($"--direction {a.Direction.Name()} vs {b.Direction.Name()}");
        if (a.Seed != b.Seed) d.Add($"--seed {a.Seed} vs {b.Seed}");
        if (a.Budget != b.Budget) d.Add(string.Create(CultureInfo.InvariantCulture, $"--budget {a.Budget} vs {b.Budget}"));
        if (a.PairsPerBatch != b.PairsPerBatch) d.Add($"--pairs-per-batch {a.PairsPerBatch} vs {b.PairsPerBatch}");
        if (UnitPairs != other.UnitPairs) d.Add($"--unit-pairs {UnitPairs} vs {other.UnitPairs}");
        if (SliceNodes != other.SliceNodes) d.Add($"--slice-nodes {SliceNodes} vs {other.SliceNodes}");
        if (d.Count == 0 && UnitHash != other.UnitHash) d.Add("other settings (inclusion probability, normalisation guard, prefix reuse)");
        return d;
    }

    private sealed class Manifest
    {
        [JsonPropertyName("format")] public string? Format { get; set; }
        [JsonPropertyName("unit_hash")] public string? UnitHash { get; set; }
        [JsonPropertyName("model")] public string? Model { get; set; }
        [JsonPropertyName("model_sha256")] public string? ModelSha256 { get; set; }
        [JsonPropertyName("tokenizer")] public string? Tokenizer { get; set; }
        [JsonPropertyName("tasks")] public string? Tasks { get; set; }
        [JsonPropertyName("pairs_sha256")] public string? PairsSha256 { get; set; }
        [JsonPropertyName("pairs")] public int Pairs { get; set; }
        [JsonPropertyName("seq_len")] public int SeqLen { get; set; }
        [JsonPropertyName("length")] public int? Length { get; set; }
        [JsonPropertyName("method")] public string? Method { get; set; }
        [JsonPropertyName("nodes")] public string? Nodes { get; set; }
        [JsonPropertyName("positions")] public string? Positions { get; set; }
        [JsonPropertyName("metric")] public string? Metric { get; set; }
        [JsonPropertyName("direction")] public string? Direction { get; set; }
        [JsonPropertyName("verify_top")] public int VerifyTop { get; set; }
        [JsonPropertyName("bound")] public double? Bound { get; set; }
        [JsonPropertyName("bound_draws")] public int BoundDraws { get; set; }
        [JsonPropertyName("inclusion_probability")] public double InclusionProbability { get; set; }
        [JsonPropertyName("budget")] public double Budget { get; set; }
        [JsonPropertyName("hierarchical_threshold")] public double HierarchicalThreshold { get; set; }
        [JsonPropertyName("pairs_per_batch")] public int PairsPerBatch { get; set; }
        [JsonPropertyName("normalization_guard")] public double NormalizationGuard { get; set; }
        [JsonPropertyName("seed")] public int Seed { get; set; }
        [JsonPropertyName("unit_pairs")] public int UnitPairs { get; set; }
        [JsonPropertyName("slice_nodes")] public int SliceNodes { get; set; }
        [JsonPropertyName("backend")] public string? Backend { get; set; }
        [JsonPropertyName("threads")] public int Threads { get; set; }
        [JsonPropertyName("shard_index")] public int ShardIndex { get; set; }
        [JsonPropertyName("shard_count")] public int ShardCount { get; set; }
    }
}

/// <summary>Shard <see cref="Index"/> of <see cref="Count"/>: the work units u with u mod Count = Index.</summary>
internal readonly record struct Shard(int Index, int Count)
{
    public static readonly Shard Whole = new(0, 1);

    public bool Owns(int unit) => unit % Count == Index;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Index}/{Count}");

    /// <summary>Parses "i/n".</summary>
    /// <exception cref="AtpFastException">Not of the form i/n with 0 ≤ i &lt; n (the message names the flag).</exception>
    public static Shard Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int i)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n))
            throw new AtpFastException($"--shard {text}: expected i/n, e.g. 0/2 (shard index i of n shards, counting from 0)");
        if (n < 1) throw new AtpFastException($"--shard {text}: the shard count must be at least 1");
        if (i >= n)
            throw new AtpFastException($"--shard {text}: the shard index must be below the shard count (0/{n} … {n - 1}/{n}; shards count from 0)");
        return new Shard(i, n);
    }
}
