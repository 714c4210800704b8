using System.Numerics.Tensors;

namespace AtpFast.Cpu;

/// <summary>
/// The reference backend: fp32 passes on the CPU, vectorised with <see cref="TensorPrimitives"/> (AVX2/FMA where
/// the machine has it) and parallel over rows. Activations live in one arena sized for the largest
/// (batch, seqLen) seen, reused across passes. Layout of every activation: [batch·seqLen, feature] row-major.
/// </summary>
public sealed class CpuBackend : IBackend
{
    private readonly ModelConfig _c;
    private readonly float[] _w;
    private readonly ParallelOptions _parallel;
    private float[] _cos = [], _sin = []; // [position, RotaryDims/2], grown on demand
    private int _rotaryPositions;
    private Arena? _arena;

    /// <summary>Creates a backend over <paramref name="weights"/>.</summary>
    /// <param name="weights">The model (not copied; do not modify while the backend is in use).</param>
    /// <param name="precision">Only <see cref="Precision.Float32"/> is implemented so far.</param>
    /// <param name="threads">Worker threads (0 = all cores).</param>
    public CpuBackend(ModelWeights weights, Precision precision = Precision.Float32, int threads = 0)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (precision != Precision.Float32)
            throw new NotSupportedException("the CPU backend implements fp32 passes only (fp64 comes with the gradient checks)");
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        Weights = weights;
        _c = weights.Config;
        _w = weights.Slab;
        _parallel = new ParallelOptions { MaxDegreeOfParallelism = threads == 0 ? Environment.ProcessorCount : threads };
    }

    /// <inheritdoc/>
    public string Name => "cpu-fp32";

    /// <inheritdoc/>
    public ModelWeights Weights { get; }

    /// <inheritdoc/>
    public Precision Precision => Precision.Float32;

    /// <inheritdoc/>
    public void Dispose() => _arena = null;

    /// <inheritdoc/>
    public void Forward(ReadOnlySpan<int> tokenIds, int batch, int seqLen, Span<float> logits)
    {
        Validate(tokenIds, batch, seqLen, logits.Length);
        int rows = batch * seqLen;
        var a = EnsureArena(batch, seqLen);
        EnsureRotary(seqLen);
        int d = _c.DModel;

        // Embedding (+ learned positions).
        var embed = Weights.TokenEmbedding;
        for (int r = 0; r < rows; r++)
        {
            var x = a.Residual.AsSpan(r * d, d);
            _w.AsSpan(embed.Offset + tokenIds[r] * d, d).CopyTo(x);
            if (_c.MaxPositions > 0)
                TensorPrimitives.Add(x, _w.AsSpan(Weights.PositionEmbedding.Offset + (r % seqLen) * d, d), x);
        }

        for (int l = 0; l < _c.Layers; l++)
        {
            var lw = Weights.Layers[l];
            Norm(a.Residual, a.Normed, rows, lw.AttnNormWeight, lw.AttnNormBias);
            Linear(a.Normed, rows, lw.Wq, lw.Bq, a.Q);
            Linear(a.Normed, rows, lw.Wk, lw.Bk, a.K);
            Linear(a.Normed, rows, lw.Wv, lw.Bv, a.V);
            if (_c.Rotary != RotaryStyle.None)
            {
                Rotate(a.Q, rows, seqLen, _c.Heads);
                Rotate(a.K, rows, seqLen, _c.KvHeads);
            }
            Attention(a, batch, seqLen);
            Linear(a.Z, rows, lw.Wo, lw.Bo, a.AttnOut);
            if (_c.ParallelResidual)
            {
                Norm(a.Residual, a.Normed, rows, lw.MlpNormWeight, lw.MlpNormBias);
                Mlp(a, rows, lw);
                TensorPrimitives.Add(a.Residual.AsSpan(0, rows * d), a.AttnOut.AsSpan(0, rows * d), a.Residual.AsSpan(0, rows * d));
                TensorPrimitives.Add(a.Residual.AsSpan(0, rows * d), a.MlpOut.AsSpan(0, rows * d), a.Residual.AsSpan(0, rows * d));
            }
            else
            {
                TensorPrimitives.Add(a.Residual.AsSpan(0, rows * d), a.AttnOut.AsSpan(0, rows * d), a.Residual.AsSpan(0, rows * d));
                Norm(a.Residual, a.Normed, rows, lw.MlpNormWeight, lw.MlpNormBias);
                Mlp(a, rows, lw);
                TensorPrimitives.Add(a.Residual.AsSpan(0, rows * d), a.MlpOut.AsSpan(0, rows * d), a.Residual.AsSpan(0, rows * d));
            }
        }

        Norm(a.Residual, a.Normed, rows, Weights.FinalNormWeight, Weights.FinalNormBias);
        Unembed(a.Normed, rows, logits);
    }

    private void Validate(ReadOnlySpan<int> tokenIds, int batch, int seqLen, int logitsLength)
    {
        if (batch < 1) throw new InvalidModelInputException($"batch must be at least 1 (got {batch})");
        if (seqLen < 1) throw new InvalidModelInputException("empty prompt: a sequence needs at least one token");
        if (seqLen > _c.MaxSequenceLength)
            throw new InvalidModelInputException($"sequence of {seqLen} tokens is longer than the model's {_c.MaxSequenceLength} positions");
        long rows = (long)batch * seqLen;
        if (tokenIds.Length != rows)
            throw new InvalidModelInputException($"token id buffer holds {tokenIds.Length} ids, expected batch·seqLen = {rows}");
        if (logitsLength != rows * _c.VocabSize)
            throw new InvalidModelInputException($"logits buffer holds {logitsLength} floats, expected batch·seqLen·vocab = {rows * _c.VocabSize}");
        for (int i = 0; i < tokenIds.Length; i++)
        {
            if ((uint)tokenIds[i] >= (uint)_c.VocabSize)
                throw new InvalidModelInputException(
                    $"token id {tokenIds[i]} at sequence {i / seqLen}, position {i % seqLen} is outside the vocabulary [0, {_c.VocabSize})");
        }
    }

    private Arena EnsureArena(int batch, int seqLen)
    {
        long scores = (long)batch * _c.Heads * seqLen * seqLen;
        if (_arena is null || _arena.Rows < batch * seqLen || _arena.Scores.Length < scores)
            _arena = new Arena(_c, batch * seqLen, scores);
        return _arena;
    }

    private void EnsureRotary(int positions)
    {
        if (_c.Rotary == RotaryStyle.None || positions <= _rotaryPositions) return;
        int half = _c.RotaryDims / 2;
        int n = Math.Max(positions, 2 * _rotaryPositions);
        var cos = new float[n * half];
        var sin = new float[n * half];
        for (int p = 0; p < n; p++)
        {
            for (int i = 0; i < half; i++)
            {
                // Same arithmetic as the reference implementations: fp32 inverse frequency times position.
                float invFreq = 1f / MathF.Pow(_c.RotaryBase, 2f * i / _c.RotaryDims);
                float angle = p * invFreq;
                cos[p * half + i] = MathF.Cos(angle);
                sin[p * half + i] = MathF.Sin(angle);
            }
        }
        _cos = cos;
        _sin = sin;
        _rotaryPositions = n;
    }

    /// <summary>y = x·W + b for x [rows, in], W [in, out] (the register-tiled <see cref="Gemm"/>).</summary>
    private void Linear(float[] x, int rows, TensorRef w, TensorRef b, float[] y) =>
        Gemm.Multiply(x, rows, w.Rows, _w, w.Offset, w.Cols, _w, b.Offset, y, _parallel);

    private void Norm(float[] x, float[] y, int rows, TensorRef weight, TensorRef bias)
    {
        int d = _c.DModel;
        var w = _w.AsSpan(weight.Offset, d);
        var b = _w.AsSpan(bias.Offset, d);
        for (int r = 0; r < rows; r++)
        {
            var xr = x.AsSpan(r * d, d);
            var yr = y.AsSpan(r * d, d);
            if (_c.Norm == NormKind.LayerNorm)
            {
                float mean = TensorPrimitives.Sum(xr) / d;
                TensorPrimitives.Subtract(xr, mean, yr);
                float variance = TensorPrimitives.SumOfSquares(yr) / d;
                TensorPrimitives.Multiply(yr, 1f / MathF.Sqrt(variance + _c.NormEps), yr);
                TensorPrimitives.MultiplyAdd(yr, w, b, yr);
            }
            else
            {
                float meanSquare = TensorPrimitives.SumOfSquares(xr) / d;
                TensorPrimitives.Multiply(xr, 1f / MathF.Sqrt(meanSquare + _c.NormEps), yr);
                TensorPrimitives.Multiply(yr, w, yr);
            }
        }
    }

    /// <summary>Rotary embedding in place on [rows, heads·HeadDim]; position = row index within its sequence.</summary>
    private void Rotate(float[] qk, int rows, int seqLen, int heads)
    {
        int hd = _c.HeadDim, half = _c.RotaryDims / 2;
        bool interleaved = _c.Rotary == RotaryStyle.Interleaved;
        for (int r = 0; r < rows; r++)
        {
            int p = r % seqLen;
            for (int h = 0; h < heads; h++)
            {
                int baseIndex = r * heads * hd + h * hd;
                for (int i = 0; i < half; i++)
                {
                    int i0 = baseIndex + (interleaved ? 2 * i : i);
                    int i1 = baseIndex + (interleaved ? 2 * i + 1 : i + half);
                    float x0 = qk[i0], x1 = qk[i1];
                    float cos = _cos[p * half + i], sin = _sin[p * half + i];
                    qk[i0] = x0 * cos - x1 * sin;
                    qk[i1] = x1 * cos + x0 * sin;
                }
            }
        }
    }

    /// <summary>Causal softmax attention with GQA; writes z [rows, H·HeadDim].</summary>
    private void Attention(Arena a, int batch, int seqLen)
    {
        int heads = _c.Heads, hd = _c.HeadDim, group = _c.GroupSize, kvWidth = _c.KvWidth, qWidth = _c.QueryWidth;
        float scale = 1f / MathF.Sqrt(hd);
        Parallel.For(0, batch * heads, _parallel, bh =>
        {
            int b = bh / heads, h = bh % heads, kvh = h / group;
            var scores = a.Scores.AsSpan(bh * seqLen * seqLen, seqLen * seqLen);
            for (int t = 0; t < seqLen; t++)
            {
                var q = a.Q.AsSpan((b * seqLen + t) * qWidth + h * hd, hd);
                var row = scores.Slice(t * seqLen, t + 1);
                for (int s = 0; s <= t; s++)
                    row[s] = TensorPrimitives.Dot(q, a.K.AsSpan((b * seqLen + s) * kvWidth + kvh * hd, hd)) * scale;
                TensorPrimitives.SoftMax(row, row);
                var z = a.Z.AsSpan((b * seqLen + t) * qWidth + h * hd, hd);
                z.Clear();
                for (int s = 0; s <= t; s++)
                    TensorPrimitives.MultiplyAdd(a.V.AsSpan((b * seqLen + s) * kvWidth + kvh * hd, hd), row[s], z, z);
            }
        });
    }

    private void Mlp(Arena a, int rows, LayerWeights lw)
    {
        int n = rows * _c.DMlp;
        Linear(a.Normed, rows, lw.WIn, lw.BIn, a.Hidden);
        var hidden = a.Hidden.AsSpan(0, n);
        switch (_c.Activation)
        {
            case MlpActivation.SwiGlu:
                Linear(a.Normed, rows, lw.WGate, lw.BGate, a.Gate);
                var gate = a.Gate.AsSpan(0, n);
                // silu(g) = g·sigmoid(g); post-activation = silu(gate)·up.
                TensorPrimitives.Sigmoid(gate, a.Scratch.AsSpan(0, n));
                TensorPrimitives.Multiply(gate, a.Scratch.AsSpan(0, n), gate);
                TensorPrimitives.Multiply(hidden, gate, hidden);
                break;
            case MlpActivation.GeluErf:
                for (int i = 0; i < n; i++) hidden[i] = Activations.GeluErf(hidden[i]);
                break;
            case MlpActivation.GeluTanh:
                Activations.GeluTanh(hidden, a.Scratch.AsSpan(0, n));
                break;
            case MlpActivation.Relu:
                TensorPrimitives.Max(hidden, 0f, hidden);
                break;
        }
        Linear(a.Hidden, rows, lw.WOut, lw.BOut, a.MlpOut);
    }

    private void Unembed(float[] h, int rows, Span<float> logits)
    {
        int d = _c.DModel, vocab = _c.VocabSize;
        var u = Weights.Unembedding;
        var ub = Weights.UnembeddingBias;
        var weights = _w;
        // A Span cannot be captured by the parallel body: compute rows into the arena's logits buffer.
        var arena = _arena!;
        Parallel.For(0, rows, _parallel, r =>
        {
            var hr = h.AsSpan(r * d, d);
            var lr = arena.Logits.AsSpan(r * vocab, vocab);
            for (int v = 0; v < vocab; v++)
                lr[v] = TensorPrimitives.Dot(hr, weights.AsSpan(u.Offset + v * d, d)) + weights[ub.Offset + v];
        });
        arena.Logits.AsSpan(0, rows * vocab).CopyTo(logits);
    }

    /// <summary>All activations of one pass, sized for <see cref="Rows"/> = batch·seqLen rows.</summary>
    private sealed class Arena
    {
        public Arena(ModelConfig c, int rows, long scores)
        {
            Rows = rows;
            Residual = new float[rows * c.DModel];
            Normed = new float[rows * c.DModel];
            Q = new float[rows * c.QueryWidth];
            K = new float[rows * c.KvWidth];
            V = new float[rows * c.KvWidth];
            Z = new float[rows * c.QueryWidth];
            AttnOut = new float[rows * c.DModel];
            MlpOut = new float[rows * c.DModel];
            Hidden = new float[rows * c.DMlp];
            Gate = c.GatedMlp ? new float[rows * c.DMlp] : [];
            Scratch = new float[rows * c.DMlp];
            // Attention probabilities per (sequence, head): [seqLen, seqLen] each.
            if (scores > Array.MaxLength || (long)rows * c.VocabSize > Array.MaxLength)
                throw new InvalidModelInputException($"a batch of {rows} rows is too large for one pass; split it");
            Scores = new float[scores];
            Logits = new float[rows * c.VocabSize];
        }

        public int Rows { get; }
        public float[] Residual { get; }
        public float[] Normed { get; }
        public float[] Q { get; }
        public float[] K { get; }
        public float[] V { get; }
        public float[] Z { get; }
        public float[] AttnOut { get; }
        public float[] MlpOut { get; }
        public float[] Hidden { get; }
        public float[] Gate { get; }
        public float[] Scratch { get; }
        public float[] Scores { get; }
        public float[] Logits { get; }
    }
}
