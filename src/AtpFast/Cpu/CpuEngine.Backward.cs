using System.Numerics.Tensors;

namespace AtpFast.Cpu;

/// <summary>The activation-only backward (no weight gradients, ever) and its GradDrop variant.</summary>
internal sealed partial class CpuEngine<T>
{
    public IGradientCache CreateGradients(IRunCache run)
    {
        var cpu = Own(run, nameof(run));
        return new CpuGradients<T>(this, _pool, _c, cpu.Batch, cpu.SeqLen);
    }

    public void Backward(IRunCache run, MetricTargets targets, IGradientCache gradients)
    {
        var cpu = Own(run, nameof(run));
        var g = Own(gradients, nameof(gradients));
        var reference = ValidateTargets(targets, cpu);
        if (g.Batch != cpu.Batch || g.SeqLen != cpu.SeqLen) throw new ArgumentException("gradient cache shaped for another run");
        EnsureRotary(cpu.SeqLen);
        int batch = cpu.Batch, seqLen = cpu.SeqLen, d = _c.DModel, vocab = _c.VocabSize, layers = _c.Layers;

        // Seed: ∂L/∂logits at the last position → ∂L/∂h (final-norm output) → ∂L/∂resid after the last block.
        var top = g.DResidPre[layers];
        Array.Clear(top);
        var dLogits = new double[vocab];
        var dh = new T[d];
        T[] xhat = new T[d], ghat = new T[d]; // NormBackwardRow's scratch
        var u = Weights.Unembedding;
        for (int e = 0; e < batch; e++)
        {
            MetricGradient(targets, e, cpu.LastLogits.AsSpan(e * vocab, vocab), reference, dLogits);
            Array.Clear(dh);
            for (int v = 0; v < vocab; v++)
            {
                if (dLogits[v] != 0) TensorPrimitives.MultiplyAdd(_w.AsSpan(u.Offset + v * d, d), T.CreateTruncating(dLogits[v]), dh, dh);
            }
            int row = (e + 1) * seqLen - 1;
            NormBackwardRow(cpu.ResidPre[layers].AsSpan(row * d, d), Weights.FinalNormWeight, dh, top.AsSpan(row * d, d),
                xhat, ghat);
        }
        CheckFinite(top, seqLen * d, "backward", layers, "the gradient at the final norm");
        BackwardLayers(cpu, g, layers - 1);
        g.ValidThroughLayer = layers - 1;
    }

    public void BackwardDroppingLayer(IRunCache run, IGradientCache full, int droppedLayer, IGradientCache gradients)
    {
        var cpu = Own(run, nameof(run));
        var f = Own(full, nameof(full));
        var g = Own(gradients, nameof(gradients));
        if (f.ValidThroughLayer != _c.Layers - 1) throw new ArgumentException("the full gradients must come from Backward", nameof(full));
        if (ReferenceEquals(f, g)) throw new ArgumentException("write GradDrop gradients into a second cache", nameof(gradients));
        if (g.Batch != cpu.Batch || g.SeqLen != cpu.SeqLen || f.Batch != cpu.Batch || f.SeqLen != cpu.SeqLen)
            throw new ArgumentException("gradient caches shaped for another run");
        ArgumentOutOfRangeException.ThrowIfNegative(droppedLayer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(droppedLayer, _c.Layers);
        EnsureRotary(cpu.SeqLen);
        // Detaching block l's write leaves every gradient above l unchanged; within block l nothing receives a
        // gradient and resid_pre of l receives the skip path's gradient, the one at resid_post of l.
        g.ClearLayer(droppedLayer);
        Array.Copy(f.DResidPre[droppedLayer + 1], g.DResidPre[droppedLayer], g.DResidPre[droppedLayer].Length);
        BackwardLayers(cpu, g, droppedLayer - 1);
        g.ValidThroughLayer = droppedLayer;
    }

    /// <summary>∂metric/∂logits of example <paramref name="e"/> at the last position.</summary>
    private static void MetricGradient(MetricTargets targets, int e, ReadOnlySpan<T> logits, ReferenceDistribution? reference, double[] grad)
    {
        Array.Clear(grad);
        int a = targets.Answers[e], w = targets.Wrongs[e];
        switch (targets.Kind)
        {
            case MetricKind.LogitDiff:
                grad[a] += 1;
                grad[w] -= 1;
                return;
            case MetricKind.NormalizedLogitDiff:
                double scale = 1.0 / (targets.NormalizationHigh![e] - targets.NormalizationLow![e]);
                grad[a] += scale;
                grad[w] -= scale;
                return;
        }
        double lse = LogSumExp(logits);
        double pa = Math.Exp(double.CreateTruncating(logits[a]) - lse);
        var pRef = targets.Kind == MetricKind.Kl ? reference!.Probs(e) : default;
        for (int v = 0; v < grad.Length; v++)
        {
            double p = Math.Exp(double.CreateTruncating(logits[v]) - lse);
            grad[v] = targets.Kind switch
            {
                MetricKind.LogProb => -p,                       // ∂/∂z_v log p_a = δ_av − p_v
                MetricKind.Prob => -pa * p,                     // ∂/∂z_v p_a = p_a·(δ_av − p_v)
                MetricKind.Kl => p - pRef[v],
                _ => throw new InvalidOperationException(),
            };
        }
        if (targets.Kind == MetricKind.LogProb) grad[a] += 1;
        else if (targets.Kind == MetricKind.Prob) grad[a] += pa;
    }

    /// <summary>Backward through blocks <paramref name="fromLayer"/> down to 0; the gradient at the output of
    /// block l is read from <c>DResidPre[l + 1]</c>.</summary>
    private void BackwardLayers(CpuRun<T> run, CpuGradients<T> g, int fromLayer)
    {
        for (int l = fromLayer; l >= 0; l--)
        {
            LayerBackward(run, g, l);
            CheckFinite(g.DResidPre[l], run.SeqLen * _c.DModel, "backward", l, "the gradient of the residual stream entering the block");
        }
    }

    private void LayerBackward(CpuRun<T> run, CpuGradients<T> g, int l)
    {
        var lw = Weights.Layers[l];
        int rows = run.Batch * run.SeqLen, d = _c.DModel, dMlp = _c.DMlp, n = rows * d, hidden = rows * dMlp;
        var dX = g.DResidPre[l + 1];
        var dResid = g.DResidPre[l];

        // MLP: ∂L/∂mlp_out = ∂L/∂resid_post; neurons; pre-activations; the MLP norm's output.
        Array.Copy(dX, g.DMlpOut[l], n);
        Gemm.Multiply(dX, rows, d, _w, lw.WOut.Offset, dMlp, null, 0, g.DAct[l], _parallel, transposeB: true);
        var dUp = _ws.Get(ref _ws.D1, hidden);
        var dGate = _c.GatedMlp ? _ws.Get(ref _ws.D2, hidden) : [];
        Activations.Backward(_c.Activation, run.Up[l], run.Gate[l], g.DAct[l], dUp, dGate, rows, dMlp, _parallel);
        var dH2 = _ws.Get(ref _ws.D3, n);
        Gemm.Multiply(dUp, rows, dMlp, _w, lw.WIn.Offset, d, null, 0, dH2, _parallel, transposeB: true);
        if (_c.GatedMlp) Gemm.Multiply(dGate, rows, dMlp, _w, lw.WGate.Offset, d, null, 0, dH2, _parallel, transposeB: true, accumulate: true);

        // ∂L/∂attn_out: the residual gradient at the MLP's input (sequential) or at the block output (parallel).
        var dAttn = g.DAttnOut[l];
        if (_c.ParallelResidual)
        {
            Array.Copy(dX, dAttn, n);
            Array.Copy(dX, dResid, n);
            NormBackward(run.ResidPre[l], rows, lw.MlpNormWeight, dH2, dResid);
        }
        else
        {
            var mid = _ws.Get(ref _ws.Mid, n);
            TensorPrimitives.Add(run.ResidPre[l].AsSpan(0, n), run.AttnOut[l].AsSpan(0, n), mid.AsSpan(0, n));
            Array.Copy(dX, dAttn, n);
            NormBackward(mid, rows, lw.MlpNormWeight, dH2, dAttn);
            Array.Copy(dAttn, dResid, n);
        }

        // Attention: z, probabilities, q/k/v after rotary, then back through rotary and the projections.
        Gemm.Multiply(dAttn, rows, d, _w, lw.Wo.Offset, _c.QueryWidth, null, 0, g.DZ[l], _parallel, transposeB: true);
        AttentionBackward(run, g, l);
        var dQ = _ws.Get(ref _ws.D4, rows * _c.QueryWidth);
        var dK = _ws.Get(ref _ws.D5, rows * _c.KvWidth);
        Array.Copy(g.DQ[l], dQ, rows * _c.QueryWidth);
        Array.Copy(g.DK[l], dK, rows * _c.KvWidth);
        if (_c.Rotary != RotaryStyle.None)
        {
            Rotate(dQ, rows, run.SeqLen, 0, _c.Heads, inverse: true);
            Rotate(dK, rows, run.SeqLen, 0, _c.KvHeads, inverse: true);
        }
        var dH1 = _ws.Get(ref _ws.D3, n);
        Gemm.Multiply(dQ, rows, _c.QueryWidth, _w, lw.Wq.Offset, d, null, 0, dH1, _parallel, transposeB: true);
        Gemm.Multiply(dK, rows, _c.KvWidth, _w, lw.Wk.Offset, d, null, 0, dH1, _parallel, transposeB: true, accumulate: true);
        Gemm.Multiply(g.DV[l], rows, _c.KvWidth, _w, lw.Wv.Offset, d, null, 0, dH1, _parallel, transposeB: true, accumulate: true);
        NormBackward(run.ResidPre[l], rows, lw.AttnNormWeight, dH1, dResid);
    }

    /// <summary>Softmax attention backward per (sequence, key/value head): ∂L/∂A (kept for the QK fix), then
    /// ∂L/∂q, ∂L/∂k (after rotary) and ∂L/∂v, summing over the query heads that share a key/value head.</summary>
    private void AttentionBackward(CpuRun<T> run, CpuGradients<T> g, int l)
    {
        int seqLen = run.SeqLen, heads = _c.Heads, hd = _c.HeadDim, group = _c.GroupSize;
        int qWidth = _c.QueryWidth, kvWidth = _c.KvWidth;
        T[] q = run.Q[l], k = run.K[l], v = run.V[l], probs = run.Probs[l];
        T[] dz = g.DZ[l], dProbs = g.DProbs[l], dq = g.DQ[l], dk = g.DK[l], dv = g.DV[l];
        T scale = _scale;
        Parallel.For(0, run.Batch * _c.KvHeads, _parallel, bk =>
        {
            int b = bk / _c.KvHeads, kvh = bk % _c.KvHeads;
            for (int s = 0; s < seqLen; s++)
            {
                dk.AsSpan((b * seqLen + s) * kvWidth + kvh * hd, hd).Clear();
                dv.AsSpan((b * seqLen + s) * kvWidth + kvh * hd, hd).Clear();
            }
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
            {
                for (int t = 0; t < seqLen; t++)
                {
                    int rowT = b * seqLen + t;
                    var dzT = dz.AsSpan(rowT * qWidth + h * hd, hd);
                    var qT = q.AsSpan(rowT * qWidth + h * hd, hd);
                    var dqT = dq.AsSpan(rowT * qWidth + h * hd, hd);
                    var pRow = probs.AsSpan(((b * heads + h) * seqLen + t) * seqLen, t + 1);
                    var dpRow = dProbs.AsSpan(((b * heads + h) * seqLen + t) * seqLen, t + 1);
                    for (int s = 0; s <= t; s++)
                        dpRow[s] = Simd.Dot<T>(dzT, v.AsSpan((b * seqLen + s) * kvWidth + kvh * hd, hd));
                    T rowDot = Simd.Dot<T>(pRow, dpRow);
                    dqT.Clear();
                    for (int s = 0; s <= t; s++)
                    {
                        int keyRow = (b * seqLen + s) * kvWidth + kvh * hd;
                        T dScore = pRow[s] * (dpRow[s] - rowDot) * scale;
                        TensorPrimitives.MultiplyAdd(k.AsSpan(keyRow, hd), dScore, dqT, dqT);
                        var dkS = dk.AsSpan(keyRow, hd);
                        TensorPrimitives.MultiplyAdd(qT, dScore, dkS, dkS);
                        var dvS = dv.AsSpan(keyRow, hd);
                        TensorPrimitives.MultiplyAdd(dzT, pRow[s], dvS, dvS);
                    }
                }
            }
        });
    }

    /// <summary>dx += ∂norm(x)/∂x ᵀ·dy for each row of x [rows, d] (statistics recomputed from x).</summary>
    private void NormBackward(T[] x, int rows, TensorRef weight, T[] dy, T[] dx)
    {
        int d = _c.DModel;
        Parallel.For(0, rows, _parallel, () => (new T[d], new T[d]), (r, _, scratch) =>
        {
            NormBackwardRow(x.AsSpan(r * d, d), weight, dy.AsSpan(r * d, d), dx.AsSpan(r * d, d), scratch.Item1, scratch.Item2);
            return scratch;
        }, _ => { });
    }

    /// <summary>One row of <see cref="NormBackward"/>: LayerNorm dx += rstd·(ĝ − mean ĝ − x̂·mean(ĝ·x̂)), RMSNorm
    /// dx += rstd·(ĝ − x̂·mean(ĝ·x̂)), with ĝ = dy·w and x̂ the normalised input.</summary>
    private void NormBackwardRow(ReadOnlySpan<T> x, TensorRef weight, ReadOnlySpan<T> dy, Span<T> dx, Span<T> xhat, Span<T> ghat)
    {
        int d = _c.DModel;
        T n = T.CreateTruncating(d), eps = T.CreateTruncating(_c.NormEps);
        TensorPrimitives.Multiply(dy, _w.AsSpan(weight.Offset, d), ghat);
        T rstd;
        if (_c.Norm == NormKind.LayerNorm)
        {
            T mean = Simd.Sum(x) / n;
            TensorPrimitives.Subtract(x, mean, xhat);
            rstd = T.One / T.Sqrt(Simd.SumOfSquares<T>(xhat) / n + eps);
            TensorPrimitives.Multiply(xhat, rstd, xhat);
            T meanG = Simd.Sum<T>(ghat) / n;
            TensorPrimitives.Subtract(ghat, meanG, ghat);
        }
        else
        {
            rstd = T.One / T.Sqrt(Simd.SumOfSquares(x) / n + eps);
            TensorPrimitives.Multiply(x, rstd, xhat);
        }
        T meanGx = Simd.Dot<T>(ghat, xhat) / n;
        // ghat − x̂·mean(ĝ·x̂), scaled by rstd, added to dx. (For LayerNorm ĝ is already centred: Σx̂ = 0 makes
        // mean((ĝ − mean ĝ)·x̂) equal mean(ĝ·x̂).)
        TensorPrimitives.MultiplyAdd(xhat, -meanGx, ghat, ghat);
        TensorPrimitives.MultiplyAdd(ghat, rstd, dx, dx);
    }
}
