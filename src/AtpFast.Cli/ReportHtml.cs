using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using AtpFast.Attribution;

namespace AtpFast.Cli;

/// <summary>
/// report.html: one self-contained page (inline CSS, SVG and a little JavaScript; no network) that a person can read
/// at a glance — the headline numbers, heatmaps (layer × head for q/k/v/z with a position selector; layer × position for
/// every node type), the ranked top nodes with their verified exact effects, the cost of verifying the ranking against
/// brute force (log-log), the false-negative bound and the run's settings.
/// </summary>
internal static class ReportHtml
{
    private static readonly (double T, int R, int G, int B)[] Ramp =
        [(0, 247, 251, 255), (0.25, 198, 219, 239), (0.5, 107, 174, 214), (0.75, 33, 113, 181), (1, 8, 48, 107)];

    private static readonly string[] TypeTitles =
    [
        "q — query of each head (after rotary)", "k — key of each key/value head", "v — value of each key/value head",
        "z — each head's attention output (before W_O)", "MLP neurons (after the nonlinearity)", "resid_pre — residual stream entering each block",
        "attn_out — attention block output", "mlp_out — MLP block output",
    ];

    public static string Render(AttributionResult result, RunContext context)
    {
        var o = result.Options;
        var c = result.Config;
        int seqLen = result.SeqLen;
        var rows = result.Rows;
        string method = MethodLabel(o.Method);
        double maxEstimate = rows.Count > 0 ? Math.Max(rows.Max(r => r.Estimate), 1e-300) : 1;
        bool perPosition = o.Positions != PositionMode.AllPositions, aggregate = o.Positions != PositionMode.PerPosition;
        // Columns of the position axes: 0..T-1 (per-position nodes) and "*" (the all-positions aggregates).
        var posColumns = new List<int>();
        if (perPosition) posColumns.AddRange(Enumerable.Range(0, seqLen));
        if (aggregate) posColumns.Add(Node.AllPositions);
        string?[] tokens = context.PositionLabels is { Length: > 0 } labels && labels.Length == seqLen ? labels : new string?[seqLen];
        var byNode = new Dictionary<Node, AttributionRow>(rows.Count);
        foreach (var row in rows) byNode[row.Node] = row;
        int verifiedCount = rows.Count(r => r.VerifiedEffect is not null);

        var h = new StringBuilder(1 << 20);
        void A(string s) => h.Append(s);
        StringBuilder Ab(string s) => h.Append(s);
        void F(FormattableString s) => h.Append(s.ToString(CultureInfo.InvariantCulture));

        A("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        F($"<title>AtpFast report — {E(method)} on {E(context.Model)}</title>");
        Ab("<style>").Append(Css).Append("</style></head><body><main>");

        // Header and headline numbers.
        F($"<header><h1>{E(method)} attribution report</h1><p class=\"sub\">{E(context.Model)} · {result.Pairs:N0} prompt pair{(result.Pairs == 1 ? "" : "s")} × {seqLen} tokens · metric <b>{E(o.Metric.Name())}</b> · <b>{E(o.Direction.Name())}</b> · {E(result.Backend)} · {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC</p></header>");
        A("<section class=\"cards\" id=\"headline\">");
        if (rows.Count > 0)
        {
            var top = rows[0];
            F($"<div class=\"card\"><div class=\"k\">top node</div><div class=\"v mono\">{E(top.Node.Name)}</div><div class=\"d\">estimate {G(top.Estimate)}{(top.VerifiedEffect is { } tv ? F2($"; exact effect {S(tv)}") : "")}</div></div>");
        }
        if (result.BaselineMetric is { } b)
            F($"<div class=\"card\"><div class=\"k\">unpatched {E(o.Metric.Name())}</div><div class=\"v\">{G(b.Clean)} → {G(b.Noise)}</div><div class=\"d\">mean over pairs: clean → noise prompt</div></div>");
        string Ratio(double x) => x > 0 ? (result.BruteForceCost / x).ToString("N0", CultureInfo.InvariantCulture) + "×" : "—";
        F($"<div class=\"card\"><div class=\"k\">cost per prompt pair</div><div class=\"v\">{result.MethodCost:N1} <span class=\"unit\">vs {result.BruteForceCost:N0} brute force</span></div><div class=\"d\">forward-pass equivalents: {E(method)} is {Ratio(result.MethodCost)} cheaper than exact patching of all {rows.Count:N0} nodes; with verification and the bound {result.TotalCost:N1} ({Ratio(result.TotalCost)})</div></div>");
        if (result.Bound is { } bound)
        {
            F($"<div class=\"card\"><div class=\"k\">false-negative bound</div><div class=\"v\">{(double.IsFinite(bound.Theta) ? "θ* = " + G(bound.Theta) : "no bound")}</div><div class=\"d\">{(double.IsFinite(bound.Theta) ? F2($"with {100 * (1 - bound.Alpha):G4}% confidence no unverified node has |effect| ≥ θ*") : "too few random subsets")}</div></div>");
        }
        F($"<div class=\"card\"><div class=\"k\">time</div><div class=\"v\">{result.Elapsed.TotalSeconds:N1} s</div><div class=\"d\">{rows.Count:N0} nodes ranked, {verifiedCount} verified</div></div>");
        A("</section>");
        foreach (string note in result.Notes) F($"<p class=\"note\">{E(note)}</p>");
        if (!result.Meaningful || rows.Count == 0)
        {
            A("<p class=\"note\">No ranking was produced.</p>");
        }

        // Heatmaps.
        A("<section id=\"heatmaps\"><h2>Where the effect is</h2>");
        F($"<p class=\"help\">Each cell is the largest <b>{E(method)} estimate</b> (mean |effect| over pairs, in units of the metric) among the nodes it holds; hover a cell for the node, its signed estimate and its verified exact effect. Cells with an orange outline hold a node verified by exact patching. Darker = larger; by default each node type has its own colour scale (its maximum is printed next to its name) — switch to one scale for all types to compare types with each other. Position labels are the tokens of the first pair's clean prompt.</p>");
        A("<div class=\"controls\"><label>colour scale <select id=\"scale\"><option value=\"type\">one per node type</option><option value=\"shared\">one for all node types</option></select></label>");
        if (perPosition)
        {
            A("<label>layer × head heatmaps show <select id=\"pos\"><option value=\"max\">the maximum over positions</option>");
            for (int p = 0; p < seqLen; p++) F($"<option value=\"{p}\">position {p}{(tokens[p] is { } t ? " · " + E(Quote(t)) : "")}</option>");
            if (aggregate) A("<option value=\"*\">@* (all positions patched together)</option>");
            A("</select></label>");
        }
        A("<span class=\"legend\">0 <span class=\"bar\"></span> maximum</span></div>");
        var headData = new Dictionary<string, object>();
        A("<div class=\"maps\">");
        foreach (NodeType type in Enum.GetValues<NodeType>())
        {
            if (((int)o.Nodes & (1 << (int)type)) == 0) continue;
            int perLayer = type switch
            {
                NodeType.Query or NodeType.HeadOutput => c.Heads,
                NodeType.Key or NodeType.Value => c.KvHeads,
                NodeType.Neuron => c.DMlp,
                _ => 1,
            };
            string tn = new Node(type, 0, 0, 0).TypeName;
            double cardMax = rows.Where(r => r.Node.Type == type).Select(r => r.Estimate).DefaultIfEmpty(0).Max();
            if (!(cardMax > 0)) cardMax = maxEstimate;
            F($"<div class=\"map-card\" data-type=\"{tn}\"><h3>{E(TypeTitles[(int)type])} <span class=\"card-max\">max {G(cardMax)}</span></h3><div class=\"pair\">");
            bool isHead = type <= NodeType.HeadOutput;
            if (isHead)
            {
                // layer × head, the maximum over positions (the JavaScript switches to one position).
                var cells = new Cell[c.Layers, perLayer];
                var perPos = new List<double[]>();
                for (int l = 0; l < c.Layers; l++)
                {
                    for (int i = 0; i < perLayer; i++)
                    {
                        foreach (int p in posColumns.Where(p => p >= 0 || !perPosition))
                            cells[l, i] = cells[l, i].With(byNode.GetValueOrDefault(new Node(type, l, i, p)));
                    }
                }
                foreach (int p in posColumns)
                {
                    var v = new double[c.Layers * perLayer];
                    for (int l = 0; l < c.Layers; l++)
                        for (int i = 0; i < perLayer; i++) v[l * perLayer + i] = Round(byNode.GetValueOrDefault(new Node(type, l, i, p))?.Estimate ?? 0);
                    perPos.Add(v);
                }
                headData[tn] = new Dictionary<string, object> { ["cols"] = perLayer, ["v"] = perPos };
                string colName = type is NodeType.Key or NodeType.Value && c.KvHeads != c.Heads ? "kv head" : "head";
                A(Heatmap($"hm-{tn}-head", "layer × " + colName, cells, Enumerable.Range(0, perLayer).Select(i => "H" + I(i)).ToArray(), null,
                    cardMax, "heads"));
            }
            if (posColumns.Count > 0)
            {
                var cells = new Cell[c.Layers, posColumns.Count];
                for (int l = 0; l < c.Layers; l++)
                {
                    for (int j = 0; j < posColumns.Count; j++)
                    {
                        for (int i = 0; i < perLayer; i++) cells[l, j] = cells[l, j].With(byNode.GetValueOrDefault(new Node(type, l, i, posColumns[j])));
                    }
                }
                string what = perLayer > 1 ? (type == NodeType.Neuron ? " (max over neurons)" : " (max over heads)") : "";
                A(Heatmap($"hm-{tn}-pos", "layer × position" + what, cells, posColumns.Select(p => p < 0 ? "*" : I(p)).ToArray(),
                    posColumns.Select(p => p < 0 ? "@*" : tokens[p]).ToArray(), cardMax, "positions"));
            }
            A("</div></div>");
        }
        A("</div></section>");

        // Ranked table.
        int shown = Math.Min(rows.Count, Math.Clamp(verifiedCount, 20, 200));
        double maxVerified = rows.Take(shown).Select(r => Math.Abs(r.VerifiedEffect ?? 0)).DefaultIfEmpty(0).Max();
        double barScale = Math.Max(maxVerified, rows.Take(shown).Select(r => r.Estimate).DefaultIfEmpty(0).Max());
        A("<section id=\"ranking\"><h2>The top nodes</h2>");
        F($"<p class=\"help\">Ranked by the {E(method)} estimate (mean |effect| over pairs); <i>signed</i> is the mean signed estimate. The <b>exact effect</b> is the mean change of the metric when that node alone is patched ({E(o.Direction.Name())}), measured by exact activation patching for the top {verifiedCount}. Bars share one scale; red bars are negative effects.</p>");
        A("<table id=\"top-table\"><thead><tr><th>rank</th><th>node</th><th>type</th><th>layer</th><th>head / neuron</th><th>position</th><th class=\"num\">estimate</th><th class=\"num\">signed</th><th class=\"num\">exact effect</th></tr></thead><tbody>");
        foreach (var row in rows.Take(shown))
        {
            var n = row.Node;
            string pos = n.IsAllPositions ? "*" : I(n.Position) + (tokens[n.Position] is { } t ? " <span class=\"tok\">" + E(Quote(t)) + "</span>" : "");
            string index = n.Head is { } hh ? "H" + I(hh) : n.NeuronIndex is { } ni ? "n" + I(ni) : "";
            F($"<tr><td class=\"num\">{row.Rank}</td><td class=\"mono\">{E(n.Name)}</td><td>{E(n.TypeName)}</td><td class=\"num\">{n.Layer}</td><td>{index}</td><td>{pos}</td>");
            F($"<td class=\"num\"><span class=\"hbar\" style=\"width:{Pct(row.Estimate, barScale)}\"></span>{G(row.Estimate)}</td><td class=\"num\">{S(row.SignedEstimate)}</td>");
            if (row.VerifiedEffect is { } v)
                F($"<td class=\"num\"><span class=\"hbar {(v < 0 ? "neg" : "pos")}\" style=\"width:{Pct(Math.Abs(v), barScale)}\"></span>{S(v)}</td></tr>");
            else
                A("<td class=\"num muted\">not verified</td></tr>");
        }
        A("</tbody></table>");
        if (rows.Count > shown) F($"<p class=\"help\">{rows.Count - shown:N0} more nodes in results.csv / results.jsonl.</p>");
        A("</section>");

        // Cost of verification.
        A("<section id=\"cost\"><h2>What it cost</h2><div class=\"cost-row\">");
        if (rows.Count > 0) A(CostCurve(result, method));
        A("<div class=\"cost-side\">");
        F($"<table class=\"kv small\"><tbody><tr><th>{E(method)} itself</th><td>{result.MethodCost:N2}</td></tr><tr><th>verifying the top {verifiedCount} by exact patching</th><td>{result.VerificationCost:N2}</td></tr><tr><th>false-negative bound ({result.Bound?.Draws ?? 0} random subsets)</th><td>{result.Bound?.CostForwardEquivalents ?? 0:N2}</td></tr><tr><th>total</th><td><b>{result.TotalCost:N2}</b></td></tr><tr><th>brute force: exact patching of every node</th><td>{result.BruteForceCost:N1}</td></tr></tbody></table>");
        A("<p class=\"help\">Costs are forward-pass equivalents per prompt pair: FLOPs of the passes actually executed divided by the FLOPs of one forward pass of one prompt (docs/attribution.md, \"Cost accounting\"). An exactly patched run is cheaper than a forward pass because it starts at the patched layer and position.</p></div></div></section>");

        // Bound.
        A("<section id=\"bound\"><h2>False negatives</h2>");
        if (result.Bound is { } bd)
        {
            F($"<p class=\"statement\">{E(bd.Describe())}.</p>");
            A(BoundChart(rows, bd));
            A("<p class=\"help\">Random subsets of the unverified nodes are patched jointly; for each node a one-sided Welch t-test compares the subsets with and without it, and θ* is the smallest threshold that every test rejects at level α (spec §5). The test measures a node's <i>marginal</i> effect inside random subsets, which equals its own effect only when effects add up; resid_pre nodes and saturated metrics break that, so read θ* as a statement about marginal effects (docs/attribution.md).</p>");
        }
        else
        {
            A("<p class=\"help\">No bound was computed (run with --bound alpha).</p>");
        }
        A("</section>");

        // Settings.
        A("<section id=\"settings\"><h2>Settings</h2><table class=\"kv small\"><tbody>");
        var settings = new List<(string, string)>
        {
            ("model", context.Model), ("model sha256", context.ModelSha256),
            ("architecture", F2($"{c.Family}, {c.Layers} layers, d {c.DModel}, {c.Heads} heads ({c.KvHeads} kv), {c.DMlp} neurons per layer, vocab {c.VocabSize:N0}")),
            ("task file", F2($"{context.Tasks} ({result.Pairs:N0} of {context.AllPairs:N0} pairs; {seqLen} tokens)")),
            ("method", method), ("node types", Node.FormatTypes(o.Nodes)), ("positions", o.Positions.ToString()),
            ("metric", o.Metric.Name()), ("direction", o.Direction.Name()), ("verified", F2($"top {verifiedCount}")),
            ("bound", o.BoundAlpha is { } a ? F2($"α = {a}, {o.BoundDraws} subsets, inclusion p = {o.InclusionProbability}") : "none"),
            ("seed", I(o.Seed)), ("backend", F2($"{result.Backend} ({result.Precision}; requested {context.BackendRequested})")),
            ("work units", F2($"{context.Units}{(context.Shards > 1 ? F2($", from {context.Shards} shards") : "")}")),
            ("versions", F2($"atpfast {ResultFiles.Version}, .NET {Environment.Version}, {RuntimeInformation.OSDescription}")),
            ("machine", F2($"{Environment.ProcessorCount} CPU threads, {RuntimeInformation.ProcessArchitecture}")),
        };
        if (context.Command is { } cmd) settings.Add(("command", cmd));
        foreach (var (k, v) in settings) F($"<tr><th>{E(k)}</th><td class=\"{(k.Contains("sha", StringComparison.Ordinal) || k == "command" ? "mono" : "")}\">{E(v)}</td></tr>");
        A("</tbody></table></section>");
        A("<footer>Written by atpfast · results.jsonl and results.csv hold every node · summary.json holds these settings and costs</footer>");
        A("</main><script>const HEADS=");
        A(JsonSerializer.Serialize(headData));
        F($";const PERPOS={(perPosition ? "true" : "false")};const NPOS={posColumns.Count};const MAXV={Round(maxEstimate).ToString("R", CultureInfo.InvariantCulture)};");
        Ab(Script).Append("</script></body></html>\n");
        return h.ToString();
    }

    /// <summary>The largest-estimate node among those a heatmap cell holds, and whether any of them was verified.</summary>
    private readonly record struct Cell(AttributionRow? Best, bool Verified)
    {
        public Cell With(AttributionRow? row) => row is null ? this
            : new Cell(Best is null || row.Estimate > Best.Estimate ? row : Best, Verified || row.VerifiedEffect is not null);
    }

    private static string Heatmap(string id, string title, Cell[,] cells, string[] cols, string?[]? colTokens, double scaleMax, string kind)
    {
        int rows = cells.GetLength(0), n = cells.GetLength(1);
        double cw = kind == "heads" ? Math.Clamp(240.0 / n, 10, 30) : Math.Clamp(400.0 / n, 9, 24), ch = 20, left = 26, topPad = 16;
        bool showTokens = colTokens is not null && n <= 48 && colTokens.Any(t => t is not null);
        double bottom = showTokens ? 52 : 6;
        double w = left + n * cw + 4, hgt = topPad + rows * ch + bottom;
        var s = new StringBuilder();
        void F(FormattableString f) => s.Append(f.ToString(CultureInfo.InvariantCulture));
        F($"<figure class=\"heatmap\" data-kind=\"{kind}\"><figcaption>{E(title)}</figcaption>");
        F($"<svg id=\"{id}\" class=\"hm\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:F0}\" height=\"{hgt:F0}\" viewBox=\"0 0 {w:F0} {hgt:F0}\" font-size=\"10\">");
        int step = n > 24 ? (int)Math.Ceiling(n / 24.0) : 1;
        for (int j = 0; j < n; j++)
        {
            if (j % step == 0 || j == n - 1)
                F($"<text x=\"{left + (j + 0.5) * cw:F1}\" y=\"{topPad - 5}\" text-anchor=\"middle\" fill=\"#555\">{E(cols[j])}</text>");
            if (showTokens && colTokens![j] is { } tok)
            {
                double x = left + (j + 0.5) * cw, y = topPad + rows * ch + 6;
                F($"<text x=\"{x:F1}\" y=\"{y:F1}\" transform=\"rotate(-60 {x:F1} {y:F1})\" text-anchor=\"end\" dominant-baseline=\"middle\" fill=\"#333\">{E(Clip(tok.Trim().Replace("\n", "⏎", StringComparison.Ordinal), 9))}</text>");
            }
        }
        for (int l = 0; l < rows; l++)
        {
            F($"<text x=\"{left - 5}\" y=\"{topPad + (l + 0.5) * ch + 3.5:F1}\" text-anchor=\"end\" fill=\"#555\">L{l}</text>");
            for (int j = 0; j < n; j++)
            {
                var cell = cells[l, j];
                double v = cell.Best?.Estimate ?? 0;
                double x = left + j * cw, y = topPad + l * ch;
                string tip = cell.Best is { } b
                    ? b.Node.Name + ": estimate " + G(b.Estimate) + ", signed " + S(b.SignedEstimate) + (b.VerifiedEffect is { } ve ? ", exact effect " + S(ve) : ", not verified")
                    : "no node";
                F($"<rect class=\"cell\" data-i=\"{l * n + j}\" data-v=\"{Round(v).ToString("R", CultureInfo.InvariantCulture)}\" x=\"{x:F1}\" y=\"{y:F1}\" width=\"{cw - 1:F1}\" height=\"{ch - 1}\" fill=\"{Color(v / scaleMax)}\"><title>{E(tip)}</title></rect>");
                if (cell.Verified)
                    F($"<rect class=\"vmark\" x=\"{x + 1:F1}\" y=\"{y + 1:F1}\" width=\"{cw - 3:F1}\" height=\"{ch - 3}\" fill=\"none\" stroke=\"#f28e2b\" stroke-width=\"2.2\" pointer-events=\"none\"/>");
            }
        }
        s.Append("</svg></figure>");
        return s.ToString();
    }

    private static string CostCurve(AttributionResult result, string method)
    {
        var rows = result.Rows;
        int metricColumns = result.Options.Metric.NeedsOnlyTwoColumns() ? 2 : result.Config.VocabSize;
        var cost = new CostModel(result.Config, result.SeqLen);
        bool exact = result.Options.Method == AttributionMethod.Exact;
        var points = new List<(double, double)>();
        double total = result.MethodCost;
        int next = 1;
        for (int k = 1; k <= rows.Count; k++)
        {
            if (!exact)
                total += cost.Patched(PatchPlan.For([rows[k - 1].Node], result.Config.Layers, result.SeqLen, result.Options.Patching.PrefixReuse), metricColumns);
            if (k == next || k == rows.Count)
            {
                points.Add((k, total));
                next = Math.Max(k + 1, (int)(k * 1.06));
            }
        }
        int verified = rows.Count(r => r.VerifiedEffect is not null);
        var markers = new List<(double, double, string)>();
        if (verified > 0 && !exact)
        {
            markers.Add((verified, result.MethodCost + result.VerificationCost, F2($"this run: top {verified} verified")));
        }
        var series = new List<(string, IReadOnlyList<(double X, double Y)>)>
        {
            ("brute force", [(1.0, result.BruteForceCost), (rows.Count, result.BruteForceCost)]),
            ($"{method} + verify top K", points),
        };
        string svg = SvgPlot.LogLog($"Cost of verifying the top K of the {method} ranking", "K (nodes verified, in ranking order)",
            "forward-pass equivalents per pair", series, markers);
        return "<figure class=\"plot\" id=\"cost-curve\">" + svg + "<figcaption class=\"help\">The curve is the cost of the method plus exact patching of its top K nodes in ranking order: " +
               "it equals the <i>cost of verified recall</i> (spec §7) of the true top K when the ranking has no false negatives above rank K — which the bound below " +
               "checks statistically. Exhaustive exact patching (the flat line) is what finding the true top K costs without a ranking. " +
               "<code>atpfast evaluate</code> measures the true curve against exhaustive patching.</figcaption></figure>";
    }

    private static string BoundChart(IReadOnlyList<AttributionRow> rows, FalseNegativeBound bound)
    {
        var verified = rows.Where(r => r.VerifiedEffect is not null).Take(40).ToList();
        if (verified.Count == 0 || !double.IsFinite(bound.Theta)) return "";
        double max = Math.Max(verified.Max(r => Math.Abs(r.VerifiedEffect!.Value)), bound.Theta) * 1.05;
        const double Left = 150, Width = 520, Bar = 14;
        double height = 30 + verified.Count * (Bar + 3) + 26;
        var s = new StringBuilder();
        void F(FormattableString f) => s.Append(f.ToString(CultureInfo.InvariantCulture));
        F($"<figure class=\"plot\"><svg id=\"bound-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{Left + Width + 90}\" height=\"{height:F0}\" font-size=\"11\" font-family=\"sans-serif\">");
        F($"<text x=\"{Left}\" y=\"14\" fill=\"#333\">|exact effect| of the verified nodes, against the bound θ* on every unverified node</text>");
        for (int i = 0; i < verified.Count; i++)
        {
            var r = verified[i];
            double v = Math.Abs(r.VerifiedEffect!.Value), y = 24 + i * (Bar + 3);
            F($"<text x=\"{Left - 6}\" y=\"{y + Bar - 3}\" text-anchor=\"end\" font-family=\"monospace\">{E(r.Node.Name)}</text>");
            F($"<rect x=\"{Left}\" y=\"{y}\" width=\"{Width * v / max:F1}\" height=\"{Bar}\" fill=\"{(r.VerifiedEffect < 0 ? "#d6604d" : "#4393c3")}\"><title>{E(r.Node.Name)}: exact effect {S(r.VerifiedEffect!.Value)}</title></rect>");
        }
        double tx = Left + Width * bound.Theta / max, bottom = 24 + verified.Count * (Bar + 3);
        F($"<rect x=\"{Left}\" y=\"20\" width=\"{tx - Left:F1}\" height=\"{bottom - 18:F1}\" fill=\"#999\" opacity=\"0.12\"/>");
        F($"<line x1=\"{tx:F1}\" y1=\"20\" x2=\"{tx:F1}\" y2=\"{bottom + 2:F1}\" stroke=\"#111\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>");
        F($"<text x=\"{tx:F1}\" y=\"{bottom + 16:F1}\" text-anchor=\"middle\">θ* = {G(bound.Theta)}</text>");
        s.Append("</svg><figcaption class=\"help\">Blue: positive effect, red: negative. Unverified nodes lie in the shaded band (|effect| &lt; θ*) with the stated confidence.</figcaption></figure>");
        return s.ToString();
    }

    private static string MethodLabel(AttributionMethod m) => m switch
    {
        AttributionMethod.AtpStar => "AtP*",
        AttributionMethod.Atp => "AtP",
        AttributionMethod.AtpQk => "AtP+QK",
        AttributionMethod.AtpGd => "AtP+GradDrop",
        AttributionMethod.Exact => "Exact patching",
        AttributionMethod.Subsampling => "Subsampling",
        AttributionMethod.Blocks => "Blocks",
        AttributionMethod.Hierarchical => "Hierarchical",
        _ => m.Name(),
    };

    internal static string Color(double t)
    {
        t = double.IsFinite(t) ? Math.Clamp(t, 0, 1) : 0;
        for (int i = 1; i < Ramp.Length; i++)
        {
            if (t <= Ramp[i].T)
            {
                var (t0, r0, g0, b0) = Ramp[i - 1];
                var (t1, r1, g1, b1) = Ramp[i];
                double f = (t - t0) / (t1 - t0);
                return string.Create(CultureInfo.InvariantCulture,
                    $"rgb({(int)Math.Round(r0 + f * (r1 - r0))},{(int)Math.Round(g0 + f * (g1 - g0))},{(int)Math.Round(b0 + f * (b1 - b0))})");
            }
        }
        return "rgb(8,48,107)";
    }

    private static double Round(double v) => double.IsFinite(v) ? double.Parse(v.ToString("G5", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture) : 0;
    private static string E(string? s) => WebUtility.HtmlEncode(s ?? "");
    private static string I(int v) => v.ToString(CultureInfo.InvariantCulture);
    private static string G(double v) => v.ToString("G4", CultureInfo.InvariantCulture);
    private static string S(double v) => (v >= 0 ? "+" : "") + v.ToString("G4", CultureInfo.InvariantCulture);
    private static string F2(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
    private static string Pct(double v, double max) => max > 0 ? string.Create(CultureInfo.InvariantCulture, $"{Math.Clamp(100 * v / max, 0, 100):F1}%") : "0%";
    private static string Quote(string token) => "“" + token.Replace("\n", "⏎", StringComparison.Ordinal) + "”";
    private static string Clip(string s, int n) => s.Length <= n ? s : s[..(n - 1)] + "…";

    private const string Css = """
        :root{--ink:#1d2430;--muted:#5b6575;--line:#e3e7ee;--bg:#f6f8fb;--accent:#2166ac}
        *{box-sizing:border-box}
        body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
        main{max-width:1240px;margin:0 auto;padding:24px 28px 40px}
        header h1{margin:0 0 4px;font-size:26px}
        .sub{margin:0 0 18px;color:var(--muted)}
        h2{font-size:19px;margin:30px 0 8px;padding-bottom:4px;border-bottom:2px solid var(--line)}
        h3{font-size:14px;margin:0 0 6px}
        section{margin-bottom:8px}
        .cards{display:flex;flex-wrap:wrap;gap:12px}
        .card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:190px;flex:1 1 190px}
        .card .k{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
        .card .v{font-size:21px;font-weight:600;margin:2px 0}
        .card .unit{font-size:13px;font-weight:400;color:var(--muted)}
        .card .d{font-size:12px;color:var(--muted)}
        .help{color:var(--muted);font-size:13px;max-width:980px}
        .note{background:#fff7e0;border:1px solid #f0d68a;border-radius:6px;padding:8px 12px}
        .statement{font-size:15px;background:#fff;border-left:4px solid var(--accent);padding:8px 12px}
        .controls{display:flex;flex-wrap:wrap;gap:18px;align-items:center;margin:8px 0 12px;font-size:13px}
        select{font:inherit;padding:2px 4px}
        .legend{display:inline-flex;align-items:center;gap:6px;color:var(--muted)}
        .legend .bar{display:inline-block;width:140px;height:12px;border:1px solid #ccd;background:linear-gradient(90deg,rgb(247,251,255),rgb(198,219,239),rgb(107,174,214),rgb(33,113,181),rgb(8,48,107))}
        .maps{display:flex;flex-wrap:wrap;gap:14px}
        .map-card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 12px;flex:0 1 auto}
        .card-max{font-weight:400;font-size:12px;color:var(--muted);margin-left:6px}
        .map-card .pair{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
        .cost-row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
        .cost-side{flex:1 1 300px;min-width:280px}
        figure{margin:0}
        figcaption{font-size:12px;color:var(--muted);margin-bottom:2px}
        .plot{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px;margin:8px 0;display:inline-block}
        .plot figcaption.help{max-width:760px;margin-top:6px}
        svg.hm rect.cell:hover{stroke:#e08214;stroke-width:2}
        table{border-collapse:collapse;background:#fff;border:1px solid var(--line)}
        #top-table{width:100%;font-size:13px}
        th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}
        thead th{background:#eef2f7;position:sticky;top:0}
        tbody tr:nth-child(even){background:#fafbfd}
        td.num,th.num{text-align:right;white-space:nowrap;position:relative}
        .hbar{display:inline-block;height:9px;background:#9ecae1;margin-right:6px;vertical-align:middle;max-width:90px;border-radius:2px}
        td.num .hbar{float:left;margin-top:4px}
        .hbar.neg{background:#f4a582}.hbar.pos{background:#92c5de}
        .mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
        .tok{color:var(--muted);font-size:12px}
        .muted{color:#9aa3b0}
        table.kv th{font-weight:500;color:var(--muted);width:260px}
        table.small{font-size:13px;margin:8px 0}
        footer{margin-top:28px;color:var(--muted);font-size:12px}
        """;

    private const string Script = """
        (function(){
          const ramp=[[0,247,251,255],[0.25,198,219,239],[0.5,107,174,214],[0.75,33,113,181],[1,8,48,107]];
          function color(t){t=isFinite(t)?Math.min(1,Math.max(0,t)):0;for(let i=1;i<ramp.length;i++){if(t<=ramp[i][0]){const a=ramp[i-1],b=ramp[i],f=(t-a[0])/(b[0]-a[0]);return 'rgb('+Math.round(a[1]+f*(b[1]-a[1]))+','+Math.round(a[2]+f*(b[2]-a[2]))+','+Math.round(a[3]+f*(b[3]-a[3]))+')';}}return 'rgb(8,48,107)';}
          const scaleSel=document.getElementById('scale'),posSel=document.getElementById('pos');
          const original=new Map();
          document.querySelectorAll('svg.hm rect.cell').forEach(r=>original.set(r,[r.getAttribute('data-v'),r.querySelector('title').textContent]));
          function recolor(){
            const shared=scaleSel&&scaleSel.value==='shared';
            document.querySelectorAll('.map-card').forEach(card=>{
              const cells=card.querySelectorAll('rect.cell');let m=MAXV;
              if(!shared){m=0;cells.forEach(c=>m=Math.max(m,+c.getAttribute('data-v')));if(m<=0)m=MAXV;}
              cells.forEach(c=>c.setAttribute('fill',color(+c.getAttribute('data-v')/m)));
              const label=card.querySelector('.card-max');if(label)label.textContent='max '+(+m).toPrecision(4);
            });
          }
          function showPosition(){
            const p=posSel?posSel.value:'max';
            for(const type in HEADS){
              const svg=document.getElementById('hm-'+type+'-head');if(!svg)continue;
              const d=HEADS[type];const idx=p==='max'?-1:(p==='*'?d.v.length-1:+p);
              svg.querySelectorAll('rect.cell').forEach(c=>{
                const o=original.get(c);
                if(idx<0){c.setAttribute('data-v',o[0]);c.querySelector('title').textContent=o[1];}
                else{const i=+c.getAttribute('data-i'),v=d.v[idx][i],l=Math.floor(i/d.cols),h=i%d.cols;
                  c.setAttribute('data-v',v);c.querySelector('title').textContent='L'+l+'.H'+h+'.'+type+'@'+(p==='*'?'*':p)+': estimate '+(+v).toPrecision(4);}
              });
              svg.querySelectorAll('rect.vmark').forEach(m=>m.style.display=idx<0?'':'none');
            }
            recolor();
          }
          if(scaleSel)scaleSel.addEventListener('change',recolor);
          if(posSel)posSel.addEventListener('change',showPosition);
          recolor();
          document.body.dataset.ready='1';
        })();
        """;
}
