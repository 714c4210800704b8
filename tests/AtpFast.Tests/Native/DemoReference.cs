using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using AtpFast.Attribution;
using AtpFast.Cpu;
using AtpFast.Onnx;
using AtpFast.Tasks;

namespace AtpFast.Tests.Native;

/// <summary>What examples/c/atp_demo.c and examples/python/atp_demo.py must print, computed with the C# API on the same
/// input (the embedded model, the same IOI pair, AtP* verifying the top rows) and formatted as their printf calls do.</summary>
internal static class DemoReference
{
    public const string Clean = "When Tom and Peter went to the school, Peter gave a gift to";
    public const string Noise = "When Clara and Rose went to the school, Laura gave a gift to";
    public const string Answer = "Tom";
    public const string Wrong = "Peter";

    private static readonly ConcurrentDictionary<int, Lazy<AttributionResult>> Results = new();

    /// <summary>The C# API's result: AtP* on the pair, the top <paramref name="top"/> verified, fp32 CPU, all cores
    /// (computed once per <paramref name="top"/>; callers only read it).</summary>
    public static AttributionResult Run(int top) =>
        Results.GetOrAdd(top, t => new Lazy<AttributionResult>(() => Compute(t), LazyThreadSafetyMode.ExecutionAndPublication)).Value;

    private static AttributionResult Compute(int top)
    {
        var model = OnnxImporter.Load(DemoModel.ModelBytes());
        var tokenizer = DemoModel.Tokenizer();
        var pair = new PromptPair(tokenizer.Encode(Clean), tokenizer.Encode(Noise), tokenizer.Encode(Answer).Single(), tokenizer.Encode(Wrong).Single());
        using var backend = new CpuBackend(model.Weights, Precision.Float32, threads: 0);
        return AtpFast.Attribution.Attribution.Run(backend, [pair], new AttributionOptions { Method = AttributionMethod.AtpStar, VerifyTop = top });
    }

    /// <summary>The example's stdout for <paramref name="top"/> rows printed with <paramref name="digits"/> significant digits.</summary>
    public static string Expected(AttributionResult result, int top, int digits)
    {
        var tokenizer = DemoModel.Tokenizer();
        var s = new StringBuilder();
        void Line(string text) => s.Append(text).Append('\n');
        Line($"atpfast 0.1.0 ({result.Backend}): atp* on the embedded IOI model");
        Line($"clean:  {Clean}");
        Line($"noise:  {Noise}");
        Line($"answer: {Answer} (id {tokenizer.Encode(Answer)[0]}), wrong: {Wrong} (id {tokenizer.Encode(Wrong)[0]})");
        Line($"{result.Pairs} pair of {result.SeqLen} tokens, {result.Rows.Count} nodes, {G(result.MethodCost, digits)} forward passes per pair");
        Line($"{"rank",4}  {"node",-18}  {"estimate",24}  {"signed_estimate",24}  {"verified_effect",24}");
        foreach (var row in result.Rows.Take(top))
        {
            Line($"{row.Rank,4}  {row.Node.Name,-18}  {G(row.Estimate, digits),24}  {G(row.SignedEstimate, digits),24}  " +
                 $"{(row.VerifiedEffect is { } v ? G(v, digits) : "-"),24}");
        }
        return s.ToString();
    }

    /// <summary>C's <c>%.{precision}g</c> (C11 7.21.6.1): the style of <c>%e</c> when the exponent X is below −4 or at
    /// least the precision P, else <c>%f</c> with P − 1 − X decimals; trailing zeros and a trailing point removed.</summary>
    public static string G(double value, int precision)
    {
        if (double.IsNaN(value)) return "-";
        if (double.IsInfinity(value)) return value > 0 ? "inf" : "-inf";
        if (value == 0) return double.IsNegative(value) ? "-0" : "0";
        string e = value.ToString("E" + (precision - 1).ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        int at = e.IndexOf('E', StringComparison.Ordinal);
        int x = int.Parse(e[(at + 1)..], CultureInfo.InvariantCulture);
        if (x >= -4 && x < precision)
            return TrimZeros(value.ToString("F" + (precision - 1 - x).ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture));
        return TrimZeros(e[..at]) + (x < 0 ? "e-" : "e+") + Math.Abs(x).ToString("00", CultureInfo.InvariantCulture);

        static string TrimZeros(string text) => text.Contains('.', StringComparison.Ordinal) ? text.TrimEnd('0').TrimEnd('.') : text;
    }
}
