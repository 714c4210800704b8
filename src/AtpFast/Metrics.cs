using System.Globalization;

namespace AtpFast;

/// <summary>The scalar the attribution explains, evaluated per example at the answer position (the last token).</summary>
public enum MetricKind
{
    /// <summary>logit[answer] − logit[wrong] (the default; roughly linear in the logits).</summary>
    LogitDiff,
    /// <summary>log softmax(logits)[answer].</summary>
    LogProb,
    /// <summary>softmax(logits)[answer].</summary>
    Prob,
    /// <summary>KL(p_clean ‖ p) = Σ_v p_clean,v·(log p_clean,v − log p_v) over the full vocabulary, p_clean being the
    /// clean prompt's distribution. Its gradient is zero at the clean run, so the AtP family is meaningless for it
    /// in the noising direction.</summary>
    Kl,
    /// <summary>(LD − LD_noise)/(LD_clean − LD_noise) with the pair's unpatched logit differences: 1 on the clean
    /// run, 0 on the noise run. Pairs whose denominator is below a guard are rejected.</summary>
    NormalizedLogitDiff,
}

/// <summary>Which run is patched with which run's activations.</summary>
public enum Direction
{
    /// <summary>Run the clean prompt, patch in the noise prompt's activation (tests necessity; the paper's default).</summary>
    Noising,
    /// <summary>Run the noise prompt, restore the clean prompt's activation (tests sufficiency).</summary>
    Denoising,
}

/// <summary>Text forms used on the command line and in result files.</summary>
public static class MetricNames
{
    /// <summary>logit-diff, logprob, prob, kl, norm-logit-diff.</summary>
    public static string Name(this MetricKind metric) => metric switch
    {
        MetricKind.LogitDiff => "logit-diff",
        MetricKind.LogProb => "logprob",
        MetricKind.Prob => "prob",
        MetricKind.Kl => "kl",
        MetricKind.NormalizedLogitDiff => "norm-logit-diff",
        _ => throw new ArgumentOutOfRangeException(nameof(metric)),
    };

    /// <summary>True when the metric reads only the answer and wrong logits (the unembedding needs two columns, not the
    /// vocabulary).</summary>
    public static bool NeedsOnlyTwoColumns(this MetricKind metric) => metric is MetricKind.LogitDiff or MetricKind.NormalizedLogitDiff;

    /// <summary>noising or denoising.</summary>
    public static string Name(this Direction direction) => direction switch
    {
        Direction.Noising => "noising",
        Direction.Denoising => "denoising",
        _ => throw new ArgumentOutOfRangeException(nameof(direction)),
    };

    /// <summary>Parses a metric name written by <see cref="Name(MetricKind)"/>.</summary>
    /// <exception cref="FormatException">Unknown name.</exception>
    public static MetricKind ParseMetric(string text) => text.Trim().ToLowerInvariant() switch
    {
        "logit-diff" or "logitdiff" or "ld" => MetricKind.LogitDiff,
        "logprob" or "log-prob" => MetricKind.LogProb,
        "prob" => MetricKind.Prob,
        "kl" => MetricKind.Kl,
        "norm-logit-diff" or "normalized-logit-diff" => MetricKind.NormalizedLogitDiff,
        _ => throw new FormatException($"unknown metric '{text}' (expected logit-diff, logprob, prob, kl or norm-logit-diff)"),
    };

    /// <summary>Parses noising or denoising.</summary>
    /// <exception cref="FormatException">Unknown name.</exception>
    public static Direction ParseDirection(string text) => text.Trim().ToLowerInvariant() switch
    {
        "noising" => Direction.Noising,
        "denoising" => Direction.Denoising,
        _ => throw new FormatException($"unknown direction '{text}' (expected noising or denoising)"),
    };
}

/// <summary>
/// What a backend evaluates per example of a batch at the last position: the metric kind and, per example, the
/// answer and wrong token, the reference run for KL, and the normalisation of the normalised logit difference.
/// </summary>
public sealed class MetricTargets
{
    /// <summary>Creates targets for a batch of <paramref name="answers"/>.Length examples.</summary>
    /// <param name="kind">The metric.</param>
    /// <param name="answers">[batch] answer token per example.</param>
    /// <param name="wrongs">[batch] contrast token per example (used by the logit differences).</param>
    /// <param name="klReference">For <see cref="MetricKind.Kl"/>: the run whose last-position distribution is p_clean
    /// (same batch size); null otherwise.</param>
    /// <param name="normalizationLow">For <see cref="MetricKind.NormalizedLogitDiff"/>: [batch] LD_noise.</param>
    /// <param name="normalizationHigh">For <see cref="MetricKind.NormalizedLogitDiff"/>: [batch] LD_clean.</param>
    /// <exception cref="ArgumentException">Missing or inconsistent per-example data.</exception>
    public MetricTargets(MetricKind kind, int[] answers, int[] wrongs, IRunCache? klReference = null,
        double[]? normalizationLow = null, double[]? normalizationHigh = null)
    {
        ArgumentNullException.ThrowIfNull(answers);
        ArgumentNullException.ThrowIfNull(wrongs);
        if (answers.Length != wrongs.Length) throw new ArgumentException("answers and wrongs differ in length");
        if (kind == MetricKind.Kl && klReference is null) throw new ArgumentException("the KL metric needs the clean reference run");
        if (klReference is not null && klReference.Batch != answers.Length)
            throw new ArgumentException($"the KL reference run has {klReference.Batch} examples, the targets {answers.Length}");
        if (kind == MetricKind.NormalizedLogitDiff &&
            (normalizationLow?.Length != answers.Length || normalizationHigh?.Length != answers.Length))
            throw new ArgumentException("the normalised logit difference needs LD_noise and LD_clean per example");
        Kind = kind;
        Answers = answers;
        Wrongs = wrongs;
        KlReference = klReference;
        NormalizationLow = normalizationLow;
        NormalizationHigh = normalizationHigh;
    }

    /// <summary>The metric.</summary>
    public MetricKind Kind { get; }

    /// <summary>[batch] answer tokens.</summary>
    public int[] Answers { get; }

    /// <summary>[batch] contrast tokens.</summary>
    public int[] Wrongs { get; }

    /// <summary>The clean run whose last-position distribution the KL metric compares with.</summary>
    public IRunCache? KlReference { get; }

    /// <summary>[batch] LD_noise of the normalised logit difference.</summary>
    public double[]? NormalizationLow { get; }

    /// <summary>[batch] LD_clean of the normalised logit difference.</summary>
    public double[]? NormalizationHigh { get; }

    /// <summary>Examples the targets describe.</summary>
    public int Batch => Answers.Length;

    /// <summary>True when the metric reads only the answer and wrong logits (the unembedding needs two columns).</summary>
    public bool NeedsOnlyTwoColumns => Kind.NeedsOnlyTwoColumns();

    /// <summary>Checks the token ids against <paramref name="vocabSize"/>.</summary>
    /// <exception cref="InvalidModelInputException">An id outside the vocabulary.</exception>
    public void Validate(int vocabSize)
    {
        for (int e = 0; e < Answers.Length; e++)
        {
            if ((uint)Answers[e] >= (uint)vocabSize || (uint)Wrongs[e] >= (uint)vocabSize)
                throw new InvalidModelInputException(string.Create(CultureInfo.InvariantCulture,
                    $"example {e}: answer {Answers[e]} / wrong {Wrongs[e]} outside the vocabulary [0, {vocabSize})"));
        }
    }

    /// <summary>The metric of example <paramref name="e"/> from its last-position logits (and, for KL, the reference
    /// log-probabilities). Shared by every backend so that values agree bit for bit.</summary>
    /// <param name="e">Example index.</param>
    /// <param name="answerLogit">logit[answer].</param>
    /// <param name="wrongLogit">logit[wrong].</param>
    /// <param name="logSumExp">log Σ_v exp(logit_v) (unused by the logit differences).</param>
    /// <param name="klDivergence">KL(p_ref ‖ p) computed by the caller (only for <see cref="MetricKind.Kl"/>).</param>
    public double Value(int e, double answerLogit, double wrongLogit, double logSumExp, double klDivergence) => Kind switch
    {
        MetricKind.LogitDiff => answerLogit - wrongLogit,
        MetricKind.NormalizedLogitDiff => (answerLogit - wrongLogit - NormalizationLow![e]) / (NormalizationHigh![e] - NormalizationLow[e]),
        MetricKind.LogProb => answerLogit - logSumExp,
        MetricKind.Prob => Math.Exp(answerLogit - logSumExp),
        MetricKind.Kl => klDivergence,
        _ => throw new InvalidOperationException(),
    };
}
