using System.Globalization;
using System.Security;
using System.Text;

namespace AtpFast.Cli;

/// <summary>A self-contained log-log line plot as SVG text (no scripts, no external resources).</summary>
internal static class SvgPlot
{
    private static readonly string[] Palette = ["#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

    /// <summary>Series of (x, y) points with x, y &gt; 0, drawn on log axes with decade grid lines and a legend.</summary>
    /// <param name="markers">Optional labelled points drawn as dots on top of the series.</param>
    public static string LogLog(string title, string xLabel, string yLabel, IReadOnlyList<(string Name, IReadOnlyList<(double X, double Y)> Points)> series,
        IReadOnlyList<(double X, double Y, string Label)>? markers = null)
    {
        const double W = 760, H = 460, Left = 70, Right = 230, Top = 40, Bottom = 50;
        var all = series.SelectMany(s => s.Points).Where(p => p.X > 0 && p.Y > 0).ToList();
        double x0 = Math.Floor(Math.Log10(all.Min(p => p.X))), x1 = Math.Ceiling(Math.Log10(all.Max(p => p.X)));
        double y0 = Math.Floor(Math.Log10(all.Min(p => p.Y))), y1 = Math.Ceiling(Math.Log10(all.Max(p => p.Y)));
        if (x1 == x0) x1++;
        if (y1 == y0) y1++;
        double Px(double x) => Left + (Math.Log10(x) - x0) / (x1 - x0) * (W - Left - Right);
        double Py(double y) => H - Bottom - (Math.Log10(y) - y0) / (y1 - y0) * (H - Top - Bottom);
        var sb = new StringBuilder();
        void Add(FormattableString s) => sb.AppendLine(s.ToString(CultureInfo.InvariantCulture));
        Add($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">");
        Add($"<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>");
        Add($"<text x=\"{W / 2 - Right / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{Esc(title)}</text>");
        for (double e = x0; e <= x1; e++)
        {
            double x = Px(Math.Pow(10, e));
            Add($"<line x1=\"{x:F1}\" y1=\"{Top}\" x2=\"{x:F1}\" y2=\"{H - Bottom}\" stroke=\"#ddd\"/><text x=\"{x:F1}\" y=\"{H - Bottom + 16}\" text-anchor=\"middle\">1e{e:F0}</text>");
        }
        for (double e = y0; e <= y1; e++)
        {
            double y = Py(Math.Pow(10, e));
            Add($"<line x1=\"{Left}\" y1=\"{y:F1}\" x2=\"{W - Right}\" y2=\"{y:F1}\" stroke=\"#ddd\"/><text x=\"{Left - 6}\" y=\"{y + 4:F1}\" text-anchor=\"end\">1e{e:F0}</text>");
        }
        Add($"<text x=\"{(Left + W - Right) / 2}\" y=\"{H - 12}\" text-anchor=\"middle\">{Esc(xLabel)}</text>");
        Add($"<text x=\"16\" y=\"{(Top + H - Bottom) / 2}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {(Top + H - Bottom) / 2})\">{Esc(yLabel)}</text>");
        for (int i = 0; i < series.Count; i++)
        {
            string color = Palette[i % Palette.Length];
            var points = series[i].Points.Where(p => p.X > 0 && p.Y > 0).Select(p => string.Create(CultureInfo.InvariantCulture, $"{Px(p.X):F1},{Py(p.Y):F1}"));
            Add($"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"{(i == 0 ? 2.5 : 1.6)}\" points=\"{string.Join(" ", points)}\"/>");
            double ly = Top + 10 + i * 18;
            Add($"<line x1=\"{W - Right + 12}\" y1=\"{ly}\" x2=\"{W - Right + 36}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/><text x=\"{W - Right + 42}\" y=\"{ly + 4}\">{Esc(series[i].Name)}</text>");
        }
        foreach (var (mx, my, label) in markers ?? [])
        {
            if (!(mx > 0 && my > 0)) continue;
            Add($"<circle class=\"marker\" cx=\"{Px(mx):F1}\" cy=\"{Py(my):F1}\" r=\"5\" fill=\"#d62728\" stroke=\"white\" stroke-width=\"1.5\"/><text x=\"{Px(mx) + 8:F1}\" y=\"{Py(my) - 8:F1}\" font-size=\"11\">{Esc(label)}</text>");
        }
        Add($"</svg>");
        return sb.ToString();
    }

    private static string Esc(string s) => SecurityElement.Escape(s) ?? "";
}
