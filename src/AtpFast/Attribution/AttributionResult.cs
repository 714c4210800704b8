using System.Globalization;
using System.Text;
using System.Text.Json;

namespace AtpFast.Attribution;

/// <summary>
/// One row of the tidy attribution table: a node scored by one method for one metric and direction.
/// <see cref="Estimate"/> is what the ranking uses: |mean effect| for <c>exact</c>, mean |·| over pairs for the
/// estimators, the subset/block/group |effect| for the baselines. <see cref="SignedEstimate"/> is the signed mean.
/// <see cref="VerifiedEffect"/> is the exact mean effect (signed) when the node was verified.
/// <see cref="CostForwardEquivalents"/> is what producing this row's estimate cost per prompt pair: the whole method
/// for estimators and baselines (one pass set scores every node), the node's own patched run for <c>exact</c>.
/// </summary>
public sealed record AttributionRow(
    int Id,
    Node Node,
    AttributionMethod Method,
    MetricKind Metric,
    Direction Direction,
    double Estimate,
    double SignedEstimate,
    int Rank,
    double? VerifiedEffect,
    double CostForwardEquivalents)
{
    /// <summary>The field names of the tidy table, in column order.</summary>
    public static readonly string[] Columns =
        ["node", "type", "layer", "head", "neuron", "position", "method", "metric", "direction", "estimate",
         "signed_estimate", "rank", "verified_effect", "cost_forward_equivalents"];
}

/// <summary>Everything one attribution run produced: the ranked rows, its settings, costs and diagnostics.</summary>
public sealed class AttributionResult
{
    internal AttributionResult(AttributionOptions options, string backend, Precision precision, ModelConfig config, int pairs,
        int seqLen, IReadOnlyList<AttributionRow> rows, double methodCost, double verificationCost, double bruteForceCost,
        FalseNegativeBound? bound, (double Clean, double Noise)? baseline, TimeSpan elapsed, IReadOnlyList<string> notes, bool meaningful)
    {
        Options = options;
        Backend = backend;
        Precision = precision;
        Config = config;
        Pairs = pairs;
        SeqLen = seqLen;
        Rows = rows;
        MethodCost = methodCost;
        VerificationCost = verificationCost;
        BruteForceCost = bruteForceCost;
        Bound = bound;
        BaselineMetric = baseline;
        Elapsed = elapsed;
        Notes = notes;
        Meaningful = meaningful;
    }

    /// <summary>The settings (method, nodes, metric, direction, ...).</summary>
    public AttributionOptions Options { get; }

    /// <summary>The backend's name (e.g. cpu-fp32).</summary>
    public string Backend { get; }

    /// <summary>Precision of the passes.</summary>
    public Precision Precision { get; }

    /// <summary>The model's architecture.</summary>
    public ModelConfig Config { get; }

    /// <summary>Prompt pairs in the distribution.</summary>
    public int Pairs { get; }

    /// <summary>Tokens per prompt.</summary>
    public int SeqLen { get; }

    /// <summary>Every selected node, by rank (1 = largest estimate).</summary>
    public IReadOnlyList<AttributionRow> Rows { get; }

    /// <summary>The method's cost per pair (forward-pass equivalents, see <see cref="CostModel"/>).</summary>
    public double MethodCost { get; }

    /// <summary>Verifying the top K per pair.</summary>
    public double VerificationCost { get; }

    /// <summary>Exhaustive exact patching of the selected nodes per pair (the cost ceiling), from the cost model.</summary>
    public double BruteForceCost { get; }

    /// <summary>The false-negative bound, when asked for.</summary>
    public FalseNegativeBound? Bound { get; }

    /// <summary>Method + verification + bound, per pair.</summary>
    public double TotalCost => MethodCost + VerificationCost + (Bound?.CostForwardEquivalents ?? 0);

    /// <summary>Mean unpatched metric of the clean and the noise prompts.</summary>
    public (double Clean, double Noise)? BaselineMetric { get; }

    /// <summary>Wall-clock time of the run.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>Things the user must know (e.g. why no ranking was produced).</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>False when the method's estimate is meaningless for this metric and direction (then there are no rows).</summary>
    public bool Meaningful { get; }

    /// <summary>Writes the rows as JSON lines (one object per row, fields as in <see cref="AttributionRow.Columns"/>).</summary>
    /// <param name="writer">Destination.</param>
    /// <param name="top">Only the first rows (0 = all).</param>
    public void WriteJsonl(TextWriter writer, int top = 0) => AttributionTable.WriteJsonl(Rows, writer, top);

    /// <summary>Writes the rows as JSON lines to <paramref name="path"/> (atomically: a temporary file, then a rename).</summary>
    public void WriteJsonl(string path, int top = 0) => AttributionTable.WriteAtomically(path, w => WriteJsonl(w, top));
}

/// <summary>Writers of the tidy table (JSONL and CSV) shared by the API, the tool and the C ABI.</summary>
public static class AttributionTable
{
    /// <summary>JSON lines: node, type, layer, head, neuron, position ("*" for all positions), method, metric,
    /// direction, estimate, signed_estimate, rank, verified_effect, cost_forward_equivalents (null where absent).</summary>
    public static void WriteJsonl(IEnumerable<AttributionRow> rows, TextWriter writer, int top = 0)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(writer);
        using var buffer = new MemoryStream();
        foreach (var row in top > 0 ? rows.Take(top) : rows)
        {
            buffer.SetLength(0);
            using (var json = new Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                json.WriteString("node", row.Node.Name);
                json.WriteString("type", row.Node.TypeName);
                json.WriteNumber("layer", row.Node.Layer);
                WriteOptional(json, "head", row.Node.Head);
                WriteOptional(json, "neuron", row.Node.NeuronIndex);
                if (row.Node.IsAllPositions) json.WriteString("position", "*");
                else json.WriteNumber("position", row.Node.Position);
                json.WriteString("method", row.Method.Name());
                json.WriteString("metric", row.Metric.Name());
                json.WriteString("direction", row.Direction.Name());
                WriteNumber(json, "estimate", row.Estimate);
                WriteNumber(json, "signed_estimate", row.SignedEstimate);
                json.WriteNumber("rank", row.Rank);
                if (row.VerifiedEffect is { } v) WriteNumber(json, "verified_effect", v);
                else json.WriteNull("verified_effect");
                WriteNumber(json, "cost_forward_equivalents", row.CostForwardEquivalents);
                json.WriteEndObject();
            }
            writer.WriteLine(Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
        }
    }

    /// <summary>CSV with a header row, the same columns as <see cref="WriteJsonl"/> (empty cells where absent).</summary>
    public static void WriteCsv(IEnumerable<AttributionRow> rows, TextWriter writer, int top = 0)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteLine(string.Join(",", AttributionRow.Columns));
        foreach (var row in top > 0 ? rows.Take(top) : rows)
        {
            var n = row.Node;
            writer.WriteLine(string.Join(",",
                n.Name, n.TypeName, Num(n.Layer), Num(n.Head), Num(n.NeuronIndex), n.IsAllPositions ? "*" : Num(n.Position),
                row.Method.Name(), row.Metric.Name(), row.Direction.Name(), R(row.Estimate), R(row.SignedEstimate), Num(row.Rank),
                row.VerifiedEffect is { } v ? R(v) : "", R(row.CostForwardEquivalents)));
        }

        static string Num(int? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "";
        static string R(double value) => value.ToString("R", CultureInfo.InvariantCulture);
    }

    /// <summary>Writes a file through a temporary file in the same folder and a rename, so that a crash or Ctrl-C never
    /// leaves a half-written file under the final name.</summary>
    public static void WriteAtomically(string path, Action<TextWriter> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string temp = full + $".tmp-{Environment.ProcessId}";
        try
        {
            using (var writer = new StreamWriter(temp, false, new UTF8Encoding(false)))
                write(writer);
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    private static void WriteOptional(Utf8JsonWriter json, string name, int? value)
    {
        if (value is { } v) json.WriteNumber(name, v);
        else json.WriteNull(name);
    }

    private static void WriteNumber(Utf8JsonWriter json, string name, double value)
    {
        if (double.IsFinite(value)) json.WriteNumber(name, value);
        else json.WriteNull(name);
    }
}
