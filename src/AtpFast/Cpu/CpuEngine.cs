using System.Numerics;
using System.Numerics.Tensors;

namespace AtpFast.Cpu;

/// <summary>
/// The CPU passes, generic over the element type (fp32 for the reference backend, fp64 for gradient checks):
/// cached forward, activation-only backward, GradDrop backward, attribution products with the QK fix, and exact
/// patching with prefix reuse. Vectorised with <see cref="TensorPrimitives"/> and <see cref="Simd"/>, parallel over
/// rows, heads or GEMM panels. Every activation is [rows, feature] row-major with row = sequence·T + position.
/// Every computation of a value is done by the same code in the same order wherever it happens (cached run,
/// patched run, QK-fix recomputation), so recomputing an unchanged value reproduces it bit for bit.
/// </summary>
internal sealed partial class CpuEngine<T> : IBackend where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ModelConfig _c;
    private readonly T[] _w;
    private readonly ParallelOptions _parallel;
    private readonly T _scale;
    private readonly Workspace _ws = new();
    private readonly BufferPool<T> _pool = new();
    private T[] _cos = [], _sin = []; // [position, RotaryDims/2], grown on demand
    private int _rotaryPositions;
    private CpuRun<T>? _plainRun; // reused by Forward, which keeps nothing

    public CpuEngine(ModelWeights weights, int threads, string name)
    {
        Weights = weights;
        _c = weights.Config;
        _w = typeof(T) == typeof(float) ? (T[])(object)weights.Slab : [.. weights.Slab.Select(T.CreateTruncating)];
        _parallel = new ParallelOptions { MaxDegreeOfParallelism = threads == 0 ? Environment.ProcessorCount : threads };
        _scale = T.One / T.Sqrt(T.CreateTruncating(_c.HeadDim));
        Name = name;
    }

    public string Name { get; }

    public ModelWeights Weights { get; }

    public Precision Precision => typeof(T) == typeof(float) ? Precision.Float32 : Precision.Float64;

    public void Dispose()
    {
        _plainRun = null;
        _qkTables = null;
        _ws.Clear();
        _pool.Clear();
    }

    // ---------------------------------------------------------------- validation

    private CpuRun<T> Own(IRunCache run, string name) => Own<CpuRun<T>>(run, name);

    private CpuGradients<T> Own(IGradientCache gradients, string name) => Own<CpuGradients<T>>(gradients, name);

    /// <summary>The cache as this engine's own type; a foreign, disposed or null handle is an error, not a crash.</summary>
    private TCache Own<TCache>(object? cache, string name) where TCache : class, ICpuCache
    {
        ArgumentNullException.ThrowIfNull(cache, name);
        if (cache is not TCache cpu || !ReferenceEquals(cpu.Owner, this))
            throw new ArgumentException($"{name} was not made by this backend", name);
        ObjectDisposedException.ThrowIf(cpu.Disposed, cpu);
        return cpu;
    }

    /// <summary>Checks the targets against <paramref name="run"/>; returns the KL reference's distribution (null for
    /// the other metrics).</summary>
    private ReferenceDistribution? ValidateTargets(MetricTargets targets, CpuRun<T> run)
    {
        BackendChecks.Targets(_c, targets, run);
        if (targets.KlReference is not { } reference) return null;
        var cpu = Own<CpuRun<T>>(reference, "KL reference");
        return targets.Kind == MetricKind.Kl ? cpu.Distribution ??= Distribution(cpu.LastLogits, _c.VocabSize) : null;
    }

    // ---------------------------------------------------------------- passes

    public void Forward(ReadOnlySpan<int> tokenIds, int batch, int seqLen, Span<float> logits)
    {
        BackendChecks.TokenIds(_c, tokenIds, batch, seqLen);
        long rows = (long)batch * seqLen;
        if (logits.Length != rows * _c.VocabSize)
            throw new InvalidModelInputException($"logits buffer holds {logits.Length} floats, expected batch·seqLen·vocab = {rows * _c.VocabSize}");
        if (_plainRun is null || _plainRun.Batch != batch || _plainRun.SeqLen != seqLen)
        {
            _plainRun?.Dispose();
            _plainRun = new CpuRun<T>(this, _pool, _c, batch, seqLen);
        }
        RunInto(_plainRun, tokenIds, lastLogits: false); // every position's logits are computed below
        int d = _c.DModel, vocab = _c.VocabSize, n = (int)rows;
        var normed = _ws.Get(ref _ws.Normed, n * d);
        Norm(_plainRun.ResidPre[_c.Layers], n, normed, Weights.FinalNormWeight, Weights.FinalNormBias);
        var all = _ws.Get(ref _ws.Logits, n * vocab);
        Unembed(normed, n, all);
        for (int i = 0; i < n * vocab; i++) logits[i] = float.CreateTruncating(all[i]);
        CheckFinite(all.AsSpan(0, n * vocab), vocab * seqLen, "forward", _c.Layers, "logits");
    }

    /// <summary>Managed arrays are the limit on the CPU: the largest of a run's arrays must stay below Array.MaxLength.</summary>
    public int MaxBatch(int seqLen)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(seqLen, 1);
        long perExample = Math.Max((long)_c.Heads * seqLen * seqLen, Math.Max((long)seqLen * _c.DMlp, _c.VocabSize));
        return (int)Math.Clamp(Array.MaxLength / perExample, 1, int.MaxValue);
    }

    public IRunCache Run(ReadOnlySpan<int> tokenIds, int batch, int seqLen)
    {
        BackendChecks.TokenIds(_c, tokenIds, batch, seqLen);
        var run = new CpuRun<T>(this, _pool, _c, batch, seqLen);
        RunInto(run, tokenIds, lastLogits: true);
        return run;
    }

    private void RunInto(CpuRun<T> run, ReadOnlySpan<int> tokenIds, bool lastLogits)
    {
        int batch = run.Batch, seqLen = run.SeqLen, rows = batch * seqLen, d = _c.DModel;
        tokenIds.CopyTo(run.Tokens);
        run.Distribution = null;
        EnsureRotary(seqLen);

        var x = run.ResidPre[0];
        var embed = Weights.TokenEmbedding;
        for (int r = 0; r < rows; r++)
        {
            var xr = x.AsSpan(r * d, d);
            _w.AsSpan(embed.Offset + tokenIds[r] * d, d).CopyTo(xr);
            if (_c.MaxPositions > 0)
                TensorPrimitives.Add(xr, _w.AsSpan(Weights.PositionEmbedding.Offset + (r % seqLen) * d, d), xr);
        }
        CheckFinite(x.AsSpan(0, rows * d), seqLen * d, "forward", -1, "embedding");

        var examples = Identity(batch);
        for (int l = 0; l < _c.Layers; l++)
        {
            var buffers = new LayerBuffers(
                Normed: _ws.Get(ref _ws.Normed, rows * d), Mid: _ws.Get(ref _ws.Mid, rows * d),
                Out: [],
                Q: run.Q[l], K: run.K[l], V: run.V[l], Z: run.Z[l], AttnOut: run.AttnOut[l],
                Up: run.Up[l], Gate: run.Gate[l], Act: run.Act[l], MlpOut: run.MlpOut[l], Probs: run.Probs[l]);
            var step = new Step(l, batch, seqLen, 0, seqLen, 0, seqLen, examples, null);
            Layer(step, buffers, run.ResidPre[l], run.ResidPre[l + 1], null);
            CheckFinite(run.ResidPre[l + 1].AsSpan(0, rows * d), seqLen * d, "forward", l, "the residual stream after the block");
        }

        // Final norm and the full-vocabulary logits of the last position only (what every metric reads).
        if (!lastLogits) return;
        var lastRows = _ws.Get(ref _ws.Out, batch * d);
        for (int b = 0; b < batch; b++)
            run.ResidPre[_c.Layers].AsSpan(((b + 1) * seqLen - 1) * d, d).CopyTo(lastRows.AsSpan(b * d, d));
        var normed = _ws.Get(ref _ws.Normed, batch * d);
        Norm(lastRows, batch, normed, Weights.FinalNormWeight, Weights.FinalNormBias);
        Unembed(normed, batch, run.LastLogits);
        CheckFinite(run.LastLogits, _c.VocabSize, "forward", _c.Layers, "the last position's logits");
    }

    public void Metric(IRunCache run, MetricTargets targets, Span<double> values)
    {
        var cpu = Own(run, nameof(run));
        var reference = ValidateTargets(targets, cpu);
        if (values.Length != cpu.Batch) throw new ArgumentException($"values holds {values.Length}, expected {cpu.Batch}");
        int vocab = _c.VocabSize;
        for (int e = 0; e < cpu.Batch; e++)
            values[e] = MetricOfLogits(targets, e, cpu.LastLogits.AsSpan(e * vocab, vocab), reference);
    }

    /// <summary>The metric of example <paramref name="e"/> from its full last-position logits.</summary>
    private double MetricOfLogits(MetricTargets targets, int e, ReadOnlySpan<T> logits, ReferenceDistribution? reference)
    {
        double a = double.CreateTruncating(logits[targets.Answers[e]]);
        double w = double.CreateTruncating(logits[targets.Wrongs[e]]);
        if (targets.NeedsOnlyTwoColumns) return targets.Value(e, a, w, 0, 0);
        double lse = LogSumExp(logits);
        double kl = 0;
        if (targets.Kind == MetricKind.Kl)
        {
            var logRef = reference!.LogProbs(e);
            var pRef = reference.Probs(e);
            for (int v = 0; v < logits.Length; v++)
                kl += pRef[v] * (logRef[v] - (double.CreateTruncating(logits[v]) - lse));
        }
        return targets.Value(e, a, w, lse, kl);
    }

    /// <summary>log p and p of the last-position distributions [batch, vocab] of <paramref name="lastLogits"/>.</summary>
    private static ReferenceDistribution Distribution(T[] lastLogits, int vocab)
    {
        var logProbs = new double[lastLogits.Length];
        var probs = new double[lastLogits.Length];
        for (int start = 0; start < lastLogits.Length; start += vocab)
        {
            double lse = LogSumExp(lastLogits.AsSpan(start, vocab));
            for (int v = start; v < start + vocab; v++)
            {
                logProbs[v] = double.CreateTruncating(lastLogits[v]) - lse;
                probs[v] = Math.Exp(logProbs[v]);
            }
        }
        return new ReferenceDistribution(logProbs, probs, vocab);
    }

    private static double LogSumExp(ReadOnlySpan<T> logits)
    {
        double max = double.NegativeInfinity;
        foreach (var v in logits) max = Math.Max(max, double.CreateTruncating(v));
        double sum = 0;
        foreach (var v in logits) sum += Math.Exp(double.CreateTruncating(v) - max);
        return max + Math.Log(sum);
    }

    public void ReadNode(IRunCache run, int example, Node node, Span<double> values)
    {
        var cpu = Own(run, nameof(run));
        BackendChecks.Node(_c, cpu.Batch, cpu.SeqLen, example, node, values.Length);
        var (array, width) = cpu.Site(node.Type, node.Layer, _c);
        int start = (example * cpu.SeqLen + node.Position) * width + BackendChecks.FeatureOffset(_c, node);
        for (int i = 0; i < values.Length; i++) values[i] = double.CreateTruncating(array[start + i]);
    }

    public void ReadGradient(IGradientCache gradients, int example, Node node, Span<double> values)
    {
        var g = Own(gradients, nameof(gradients));
        BackendChecks.Node(_c, g.Batch, g.SeqLen, example, node, values.Length);
        if (node.Layer > g.ValidThroughLayer)
            throw new ArgumentException($"the gradient cache holds layers 0..{g.ValidThroughLayer}, not {node.Name}", nameof(node));
        var array = g.Site(node.Type, node.Layer);
        int width = array.Length / (g.Batch * g.SeqLen);
        int start = (example * g.SeqLen + node.Position) * width + BackendChecks.FeatureOffset(_c, node);
        for (int i = 0; i < values.Length; i++) values[i] = double.CreateTruncating(array[start + i]);
    }

    public void WriteNode(IRunCache run, int example, Node node, ReadOnlySpan<double> values)
    {
        var cpu = Own(run, nameof(run));
        BackendChecks.Node(_c, cpu.Batch, cpu.SeqLen, example, node, values.Length);
        var (array, width) = cpu.Site(node.Type, node.Layer, _c);
        int start = (example * cpu.SeqLen + node.Position) * width + BackendChecks.FeatureOffset(_c, node);
        for (int i = 0; i < values.Length; i++) array[start + i] = T.CreateTruncating(values[i]);
        cpu.Version++;
    }

    public IRunCache Clone(IRunCache run) => Own(run, nameof(run)).Clone();

    // ---------------------------------------------------------------- one block

    /// <summary>
    /// The shape of one block's computation. The residual input holds <see cref="R"/> sequences of <see cref="S"/>
    /// positions, local position i being absolute position <see cref="P"/> + i. Keys, values (and the norm and
    /// projections feeding them) are computed for local positions [0, <see cref="Kb"/>); queries, attention, the
    /// output projection and the MLP for [<see cref="Qa"/>, <see cref="Qb"/>) ⊆ [0, Kb). Keys and values of absolute
    /// positions below P come from <see cref="Prefix"/> (example <see cref="Examples"/>[r]).
    /// </summary>
    private readonly record struct Step(int Layer, int R, int S, int P, int Kb, int Qa, int Qb, int[] Examples, CpuRun<T>? Prefix);

    /// <summary>Where one block writes: the cached run's arrays, or patching work space. Q/K/V hold R·Kb rows,
    /// the rest R·(Qb − Qa); <see cref="Probs"/> is null when probabilities are not kept.</summary>
    private readonly record struct LayerBuffers(T[] Normed, T[] Mid, T[] Out, T[] Q, T[] K, T[] V, T[] Z,
        T[] AttnOut, T[] Up, T[] Gate, T[] Act, T[] MlpOut, T[]? Probs);

    /// <summary>One transformer block: xOut = block(xIn) on the rows <paramref name="s"/> selects (xOut may be xIn),
    /// with patched values injected at each site when <paramref name="inject"/> is given.</summary>
    private void Layer(in Step s, in LayerBuffers b, T[] xIn, T[] xOut, Injector? inject)
    {
        var lw = Weights.Layers[s.Layer];
        int d = _c.DModel, nk = s.Kb, nq = s.Qb - s.Qa, kRows = s.R * nk, qRows = s.R * nq;

        inject?.Apply(NodeType.ResidPre, s.Layer, xIn, d, s.S, 0, nk);
        var xk = nk == s.S ? xIn : Gather(xIn, s.R, s.S, 0, nk, d, _ws.Get(ref _ws.GatherK, kRows * d));
        Norm(xk, kRows, b.Normed, lw.AttnNormWeight, lw.AttnNormBias);
        Linear(b.Normed, kRows, lw.Wq, lw.Bq, b.Q);
        Linear(b.Normed, kRows, lw.Wk, lw.Bk, b.K);
        Linear(b.Normed, kRows, lw.Wv, lw.Bv, b.V);
        if (_c.Rotary != RotaryStyle.None)
        {
            Rotate(b.Q, kRows, nk, s.P, _c.Heads, inverse: false);
            Rotate(b.K, kRows, nk, s.P, _c.KvHeads, inverse: false);
        }
        if (inject is not null)
        {
            inject.Apply(NodeType.Query, s.Layer, b.Q, _c.QueryWidth, nk, 0, nk);
            inject.Apply(NodeType.Key, s.Layer, b.K, _c.KvWidth, nk, 0, nk);
            inject.Apply(NodeType.Value, s.Layer, b.V, _c.KvWidth, nk, 0, nk);
        }
        Attention(s, b);
        inject?.Apply(NodeType.HeadOutput, s.Layer, b.Z, _c.QueryWidth, nq, s.Qa, nq);
        Linear(b.Z, qRows, lw.Wo, lw.Bo, b.AttnOut);
        inject?.Apply(NodeType.AttnOut, s.Layer, b.AttnOut, d, nq, s.Qa, nq);

        var xq = nq == s.S ? xIn : Gather(xIn, s.R, s.S, s.Qa, nq, d, _ws.Get(ref _ws.GatherQ, qRows * d));
        var attn = b.AttnOut.AsSpan(0, qRows * d);
        if (_c.ParallelResidual)
        {
            Norm(xq, qRows, b.Normed, lw.MlpNormWeight, lw.MlpNormBias);
        }
        else
        {
            TensorPrimitives.Add(xq.AsSpan(0, qRows * d), attn, b.Mid.AsSpan(0, qRows * d));
            Norm(b.Mid, qRows, b.Normed, lw.MlpNormWeight, lw.MlpNormBias);
        }
        Linear(b.Normed, qRows, lw.WIn, lw.BIn, b.Up);
        if (_c.GatedMlp) Linear(b.Normed, qRows, lw.WGate, lw.BGate, b.Gate);
        Activations.Forward(_c.Activation, b.Up, b.Gate, b.Act, qRows, _c.DMlp, _parallel);
        inject?.Apply(NodeType.Neuron, s.Layer, b.Act, _c.DMlp, nq, s.Qa, nq);
        Linear(b.Act, qRows, lw.WOut, lw.BOut, b.MlpOut);
        inject?.Apply(NodeType.MlpOut, s.Layer, b.MlpOut, d, nq, s.Qa, nq);

        var target = nq == s.S ? xOut : b.Out;
        var outRows = target.AsSpan(0, qRows * d);
        if (_c.ParallelResidual)
        {
            TensorPrimitives.Add(xq.AsSpan(0, qRows * d), attn, outRows);
            TensorPrimitives.Add(outRows, b.MlpOut.AsSpan(0, qRows * d), outRows);
        }
        else
        {
            TensorPrimitives.Add(b.Mid.AsSpan(0, qRows * d), b.MlpOut.AsSpan(0, qRows * d), outRows);
        }
        if (nq != s.S)
        {
            for (int r = 0; r < s.R; r++)
                b.Out.AsSpan(r * nq * d, nq * d).CopyTo(xOut.AsSpan((r * s.S + s.Qa) * d, nq * d));
        }
    }

    private static T[] Gather(T[] src, int r, int s, int first, int count, int width, T[] dst)
    {
        for (int i = 0; i < r; i++)
            src.AsSpan((i * s + first) * width, count * width).CopyTo(dst.AsSpan(i * count * width, count * width));
        return dst;
    }

    /// <summary>Causal softmax attention of the query rows of <paramref name="s"/>, with grouped-query sharing.</summary>
    private void Attention(Step s, LayerBuffers b)
    {
        int heads = _c.Heads, hd = _c.HeadDim, group = _c.GroupSize, kvWidth = _c.KvWidth, qWidth = _c.QueryWidth;
        int nk = s.Kb, nq = s.Qb - s.Qa, seqLen = s.P + s.S;
        var prefix = s.Prefix;
        Parallel.For(0, s.R * heads, _parallel, rh =>
        {
            int r = rh / heads, h = rh % heads, kvh = h / group, e = s.Examples[r];
            var keys = new KeyView(prefix?.K[s.Layer] ?? b.K, prefix?.V[s.Layer] ?? b.V, e * seqLen * kvWidth, s.P,
                b.K, b.V, r * nk * kvWidth, kvWidth, kvh * hd, hd);
            T[]? rented = b.Probs is null ? System.Buffers.ArrayPool<T>.Shared.Rent(seqLen) : null;
            for (int i = s.Qa; i < s.Qb; i++)
            {
                int t = s.P + i;
                var q = b.Q.AsSpan((r * nk + i) * qWidth + h * hd, hd);
                var probs = b.Probs is null ? rented.AsSpan(0, t + 1) : b.Probs.AsSpan(((e * heads + h) * seqLen + t) * seqLen, t + 1);
                var z = b.Z.AsSpan((r * nq + i - s.Qa) * qWidth + h * hd, hd);
                Scores(q, keys, probs);
                Softmax(probs);
                Mix(probs, keys, z);
            }
            if (rented is not null) System.Buffers.ArrayPool<T>.Shared.Return(rented);
        });
    }

    /// <summary>Keys and values of one key/value head of one sequence: absolute positions below
    /// <see cref="PrefixCount"/> from a cached run, the rest from recomputed rows.</summary>
    private readonly record struct KeyView(T[] PrefixK, T[] PrefixV, int PrefixBase, int PrefixCount,
        T[] SuffixK, T[] SuffixV, int SuffixBase, int Stride, int HeadOffset, int HeadDim)
    {
        public ReadOnlySpan<T> Key(int s) => s < PrefixCount
            ? PrefixK.AsSpan(PrefixBase + s * Stride + HeadOffset, HeadDim)
            : SuffixK.AsSpan(SuffixBase + (s - PrefixCount) * Stride + HeadOffset, HeadDim);

        public ReadOnlySpan<T> Value(int s) => s < PrefixCount
            ? PrefixV.AsSpan(PrefixBase + s * Stride + HeadOffset, HeadDim)
            : SuffixV.AsSpan(SuffixBase + (s - PrefixCount) * Stride + HeadOffset, HeadDim);
    }

    /// <summary>scores[s] = q·k_s/√HeadDim for s &lt; scores.Length (the causal row of the query).</summary>
    private void Scores(ReadOnlySpan<T> q, in KeyView keys, Span<T> scores)
    {
        for (int s = 0; s < scores.Length; s++) scores[s] = Simd.Dot(q, keys.Key(s)) * _scale;
    }

    /// <summary>In-place softmax with the row maximum subtracted.</summary>
    private static void Softmax(Span<T> row)
    {
        T max = TensorPrimitives.Max<T>(row);
        TensorPrimitives.Subtract(row, max, row);
        TensorPrimitives.Exp<T>(row, row);
        T sum = Simd.Sum<T>(row);
        TensorPrimitives.Divide(row, sum, row);
    }

    /// <summary>z = Σ_s probs[s]·v_s.</summary>
    private static void Mix(ReadOnlySpan<T> probs, in KeyView keys, Span<T> z)
    {
        z.Clear();
        for (int s = 0; s < probs.Length; s++) TensorPrimitives.MultiplyAdd(keys.Value(s), probs[s], z, z);
    }

    // ---------------------------------------------------------------- building blocks

    private static int[] Identity(int n) => [.. Enumerable.Range(0, n)];

    /// <summary>y = x·W + b for x [rows, in], W [in, out] in the slab.</summary>
    private void Linear(T[] x, int rows, TensorRef w, TensorRef b, T[] y) =>
        Gemm.Multiply(x, rows, w.Rows, _w, w.Offset, w.Cols, _w, b.Offset, y, _parallel);

    /// <summary>LayerNorm or RMSNorm of each row of x [rows, d] into y.</summary>
    private void Norm(T[] x, int rows, T[] y, TensorRef weight, TensorRef bias)
    {
        int d = _c.DModel;
        T n = T.CreateTruncating(d), eps = T.CreateTruncating(_c.NormEps);
        bool layerNorm = _c.Norm == NormKind.LayerNorm;
        var weights = _w;
        int wo = weight.Offset, bo = bias.Offset;
        Parallel.For(0, rows, _parallel, r =>
        {
            var xr = x.AsSpan(r * d, d);
            var yr = y.AsSpan(r * d, d);
            var w = weights.AsSpan(wo, d);
            if (layerNorm)
            {
                T mean = Simd.Sum<T>(xr) / n;
                TensorPrimitives.Subtract(xr, mean, yr);
                T variance = Simd.SumOfSquares<T>(yr) / n;
                TensorPrimitives.Multiply(yr, T.One / T.Sqrt(variance + eps), yr);
                TensorPrimitives.MultiplyAdd(yr, w, weights.AsSpan(bo, d), yr);
            }
            else
            {
                T meanSquare = Simd.SumOfSquares<T>(xr) / n;
                TensorPrimitives.Multiply(xr, T.One / T.Sqrt(meanSquare + eps), yr);
                TensorPrimitives.Multiply(yr, w, yr);
            }
        });
    }

    private void EnsureRotary(int positions)
    {
        if (_c.Rotary == RotaryStyle.None || positions <= _rotaryPositions) return;
        int n = Math.Max(positions, 2 * _rotaryPositions);
        var (cos, sin) = _c.RotaryTable(n);
        _cos = Array.ConvertAll(cos, T.CreateTruncating);
        _sin = Array.ConvertAll(sin, T.CreateTruncating);
        _rotaryPositions = n;
    }

    /// <summary>Rotary embedding in place on [rows, heads·HeadDim]; row r is at absolute position
    /// firstPosition + r mod rowsPerSeq. <paramref name="inverse"/> applies the transposed rotation (the backward).</summary>
    private void Rotate(T[] qk, int rows, int rowsPerSeq, int firstPosition, int heads, bool inverse)
    {
        int hd = _c.HeadDim, half = _c.RotaryDims / 2;
        bool interleaved = _c.Rotary == RotaryStyle.Interleaved;
        T[] cosTable = _cos, sinTable = _sin;
        Parallel.For(0, rows, _parallel, r =>
        {
            int p = firstPosition + r % rowsPerSeq;
            for (int h = 0; h < heads; h++)
            {
                int baseIndex = r * heads * hd + h * hd;
                for (int i = 0; i < half; i++)
                {
                    int i0 = baseIndex + (interleaved ? 2 * i : i);
                    int i1 = baseIndex + (interleaved ? 2 * i + 1 : i + half);
                    T x0 = qk[i0], x1 = qk[i1];
                    T cos = cosTable[p * half + i], sin = inverse ? -sinTable[p * half + i] : sinTable[p * half + i];
                    qk[i0] = x0 * cos - x1 * sin;
                    qk[i1] = x1 * cos + x0 * sin;
                }
            }
        });
    }

    /// <summary>Full-vocabulary logits of the normalised rows h [rows, d] into logits [rows, VocabSize].</summary>
    private void Unembed(T[] h, int rows, T[] logits)
    {
        int d = _c.DModel, vocab = _c.VocabSize, uo = Weights.Unembedding.Offset, bo = Weights.UnembeddingBias.Offset;
        var weights = _w;
        const int Chunk = 256;
        int chunks = (vocab + Chunk - 1) / Chunk;
        Parallel.For(0, rows * chunks, _parallel, rc =>
        {
            int r = rc / chunks, v0 = rc % chunks * Chunk, v1 = Math.Min(vocab, v0 + Chunk);
            var hr = h.AsSpan(r * d, d);
            for (int v = v0; v < v1; v++) logits[r * vocab + v] = Logit(weights, hr, uo, bo, v, d);
        });
    }

    /// <summary>One logit: h·U[v] + b[v] (shared by full and column-selective unembedding so both agree bit for bit).</summary>
    private static T Logit(T[] weights, ReadOnlySpan<T> h, int unembedOffset, int biasOffset, int v, int d) =>
        Simd.Dot<T>(h, weights.AsSpan(unembedOffset + v * d, d)) + weights[biasOffset + v];

    /// <summary>Throws <see cref="NonFiniteValueException"/> naming the first example with a NaN or infinity.</summary>
    private static void CheckFinite(ReadOnlySpan<T> values, int perExample, string pass, int layer, string where)
    {
        if (Simd.AllFinite(values)) return;
        for (int e = 0; e * perExample < values.Length; e++)
        {
            if (!Simd.AllFinite(values.Slice(e * perExample, Math.Min(perExample, values.Length - e * perExample))))
                throw new NonFiniteValueException(pass, layer, e, where);
        }
        throw new NonFiniteValueException(pass, layer, 0, where);
    }

    /// <summary>Reusable work arrays, grown on demand (the engine is single-threaded at the pass level).</summary>
    private sealed class Workspace
    {
        // Fields, not properties: Get takes them by reference to grow them.
        public T[] Normed = [], Mid = [], Out = [], GatherK = [], GatherQ = [], Logits = [];
        public T[] Q = [], K = [], V = [], Z = [], AttnOut = [], Up = [], Gate = [], Act = [], MlpOut = [], X = [];
        public T[] D1 = [], D2 = [], D3 = [], D4 = [], D5 = [];

        public T[] Get(ref T[] field, int length)
        {
            if (field.Length < length) field = new T[Math.Max(length, field.Length + field.Length / 2)];
            return field;
        }

        public void Clear()
        {
            Normed = Mid = Out = GatherK = GatherQ = Logits = [];
            Q = K = V = Z = AttnOut = Up = Gate = Act = MlpOut = X = [];
            D1 = D2 = D3 = D4 = D5 = [];
        }
    }
}
