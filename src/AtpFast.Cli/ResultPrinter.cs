using System.Globalization;
using AtpFast.Attribution;
using Spectre.Console;

namespace AtpFast.Cli;

/// <summary>The short console summary of a result: the ranked table, the cost against brute force, the bound, notes.</summary>
internal static class ResultPrinter
{
    public static void Print(AttributionResult result, int top = 15)
    {
        string method = result.Options.Method.Name();
        string m = method switch { "atp*" => "AtP*", "atp" => "AtP", "atp+qk" => "AtP+QK", "atp+gd" => "AtP+GD", _ => method };
        if (result.BaselineMetric is { } baseline)
            AnsiConsole.MarkupLine(Markup.Escape(F($"mean {result.Options.Metric.Name()}: clean {baseline.Clean:G4}, noise {baseline.Noise:G4}")));
        var table = new Table().AddColumns("rank", "node", Markup.Escape($"{m} estimate"), Markup.Escape($"{m} signed"), "exact effect (verified)");
        foreach (var row in result.Rows.Take(top))
        {
            table.AddRow(row.Rank.ToString(CultureInfo.InvariantCulture), Markup.Escape(row.Node.Name), F($"{row.Estimate:G4}"), F($"{row.SignedEstimate:+0.000;-0.000}"),
                row.VerifiedEffect is { } v ? F($"{v:+0.000;-0.000}") : "");
        }
        AnsiConsole.Write(table);
        int verified = result.Rows.Count(r => r.VerifiedEffect is not null);
        string ratio = result.MethodCost > 0 ? F($" ({result.BruteForceCost / result.MethodCost:N0}× {m}'s own cost)") : "";
        AnsiConsole.MarkupLine(Markup.Escape(
            F($"cost per prompt pair, in forward-pass equivalents: {m} {result.MethodCost:F1} + verifying the top {verified} {result.VerificationCost:F1} + bound {result.Bound?.CostForwardEquivalents ?? 0:F1} = {result.TotalCost:F1}; ") +
            F($"brute-force exact patching of all {result.Rows.Count:N0} nodes {result.BruteForceCost:N0}{ratio}")));
        if (result.Bound is { } bound) AnsiConsole.MarkupLine(Markup.Escape(bound.Describe()));
        foreach (string note in result.Notes) AnsiConsole.MarkupLine("[yellow]" + Markup.Escape(note) + "[/]");
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
