using ILGPU;

namespace AtpFast.Kernels;

/// <summary>The metrics as kernels take them (the engine's MetricKind, by value).</summary>
public enum MetricCode
{
    /// <summary>logit[answer] − logit[wrong].</summary>
    LogitDiff,
    /// <summary>log softmax[answer].</summary>
    LogProb,
    /// <summary>softmax[answer].</summary>
    Prob,
    /// <summary>KL(p_ref ‖ p).</summary>
    Kl,
    /// <summary>(LD − low)/(high − low).</summary>
    NormalizedLogitDiff,
}

/// <summary>Targets of <see cref="MetricKernel"/>: the metric, the columns per logit row, the vocabulary, and whether each row
/// holds only the answer's and the wrong token's logits (in that order; <see cref="Columns"/> is then 2) rather than the
/// whole vocabulary. The mode is explicit: with a vocabulary of two tokens a full row also has two columns.</summary>
/// <param name="Metric">The metric.</param>
/// <param name="Columns">Logits per row: 2 when <paramref name="TwoColumns"/>, else the vocabulary.</param>
/// <param name="Vocab">The vocabulary size.</param>
/// <param name="TwoColumns">Rows hold [logit[answer], logit[wrong]] only (logit differences of patched runs).</param>
public readonly record struct MetricShape(MetricCode Metric, int Columns, int Vocab, Flag TwoColumns);

/// <summary>
/// The metric at the last position and its gradient, in double like the CPU backend. <see cref="Value"/>: per row
/// (example examples[row]) from its logits (two columns for the logit differences when <see cref="MetricShape.TwoColumns"/>,
/// the vocabulary otherwise); it also
/// keeps the row's log-sum-exp and the reference's for the gradient. <see cref="Gradient"/>: ∂metric/∂logits per
/// (row, vocabulary entry) into a dense [rows, vocab] row (LD: ±1/(high − low) at answer/wrong; log-prob: δ − p;
/// prob: p_a(δ − p); KL: p − p_ref). FLOPs: O(vocab) per row.
/// </summary>
public static class MetricKernel
{
    /// <param name="row">Row.</param>
    /// <param name="logits">[rows, Columns].</param>
    /// <param name="referenceLogits">[batch, vocab] the clean run's (KL), else empty.</param>
    /// <param name="examples">[rows] example of each row.</param>
    /// <param name="answers">[batch] answers.</param>
    /// <param name="wrongs">[batch] wrong tokens.</param>
    /// <param name="low">[batch] LD_noise (normalised LD).</param>
    /// <param name="high">[batch] LD_clean (normalised LD).</param>
    /// <param name="values">[rows] output metric.</param>
    /// <param name="logSumExp">[rows, 2] output: the row's and the reference's log-sum-exp.</param>
    /// <param name="s">Shape.</param>
    public static void Value(Index1D row, ArrayView<float> logits, ArrayView<float> referenceLogits, ArrayView<int> examples,
        ArrayView<int> answers, ArrayView<int> wrongs, ArrayView<double> low, ArrayView<double> high, ArrayView<double> values,
        ArrayView<double> logSumExp, MetricShape s)
    {
        int e = examples[row], at = row * s.Columns;
        bool two = s.TwoColumns;
        double a = logits[at + (two ? 0 : answers[e])], w = logits[at + (two ? 1 : wrongs[e])];
        if (s.Metric == MetricCode.LogitDiff) { values[row] = a - w; return; }
        if (s.Metric == MetricCode.NormalizedLogitDiff) { values[row] = (a - w - low[e]) / (high[e] - low[e]); return; }
        double lse = LogSumExp(logits, at, s.Vocab);
        logSumExp[row * 2] = lse;
        if (s.Metric == MetricCode.LogProb) { values[row] = a - lse; return; }
        if (s.Metric == MetricCode.Prob) { values[row] = Math.Exp(a - lse); return; }
        double refLse = LogSumExp(referenceLogits, e * s.Vocab, s.Vocab), kl = 0;
        logSumExp[row * 2 + 1] = refLse;
        for (int v = 0; v < s.Vocab; v++)
        {
            double logRef = referenceLogits[e * s.Vocab + v] - refLse;
            kl += Math.Exp(logRef) * (logRef - (logits[at + v] - lse));
        }
        values[row] = kl;
    }

    /// <param name="index">(row, vocabulary entry).</param>
    /// <param name="logits">[rows, vocab] (full rows).</param>
    /// <param name="referenceLogits">[batch, vocab] (KL).</param>
    /// <param name="examples">[rows] example of each row.</param>
    /// <param name="answers">[batch] answers.</param>
    /// <param name="wrongs">[batch] wrong tokens.</param>
    /// <param name="low">[batch] LD_noise.</param>
    /// <param name="high">[batch] LD_clean.</param>
    /// <param name="logSumExp">[rows, 2] from <see cref="Value"/>.</param>
    /// <param name="gradient">[rows, vocab] output ∂metric/∂logits.</param>
    /// <param name="s">Shape.</param>
    public static void Gradient(Index1D index, ArrayView<float> logits, ArrayView<float> referenceLogits, ArrayView<int> examples,
        ArrayView<int> answers, ArrayView<int> wrongs, ArrayView<double> low, ArrayView<double> high, ArrayView<double> logSumExp,
        ArrayView<float> gradient, MetricShape s)
    {
        int row = index / s.Vocab, v = index % s.Vocab, e = examples[row];
        int answer = answers[e], wrong = wrongs[e];
        double g;
        if (s.Metric == MetricCode.LogitDiff || s.Metric == MetricCode.NormalizedLogitDiff)
        {
            double scale = s.Metric == MetricCode.LogitDiff ? 1.0 : 1.0 / (high[e] - low[e]);
            g = (v == answer ? scale : 0.0) - (v == wrong ? scale : 0.0);
        }
        else
        {
            double lse = logSumExp[row * 2];
            double p = Math.Exp(logits[row * s.Vocab + v] - lse);
            if (s.Metric == MetricCode.LogProb)
                g = (v == answer ? 1.0 : 0.0) - p;
            else if (s.Metric == MetricCode.Prob)
            {
                double pa = Math.Exp(logits[row * s.Vocab + answer] - lse);
                g = pa * ((v == answer ? 1.0 : 0.0) - p);
            }
            else
                g = p - Math.Exp(referenceLogits[e * s.Vocab + v] - logSumExp[row * 2 + 1]);
        }
        gradient[index] = (float)g;
    }

    private static double LogSumExp(ArrayView<float> logits, int at, int count)
    {
        double max = double.NegativeInfinity;
        for (int v = 0; v < count; v++) max = Math.Max(max, logits[at + v]);
        double sum = 0;
        for (int v = 0; v < count; v++) sum += Math.Exp(logits[at + v] - max);
        return max + Math.Log(sum);
    }
}
