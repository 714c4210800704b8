using AtpFast.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace AtpFast.Gpu;

/// <summary>The activation-only backward (no weight gradients, ever) and its GradDrop variant, as the CPU backend's.</summary>
public sealed partial class GpuBackend
{
    /// <inheritdoc/>
    public IGradientCache CreateGradients(IRunCache run)
    {
        var gpu = Own(run, nameof(run));
        return new GpuGradients(this, _acc, _c, gpu.Batch, gpu.SeqLen);
    }

    /// <inheritdoc/>
    public void Backward(IRunCache run, MetricTargets targets, IGradientCache gradients)
    {
        var gpu = Own(run, nameof(run));
        var g = Own(gradients, nameof(gradients));
        var reference = ValidateTargets(targets, gpu);
        if (g.Batch != gpu.Batch || g.SeqLen != gpu.SeqLen) throw new ArgumentException("gradient cache shaped for another run");
        EnsureRotary(gpu.SeqLen);
        int batch = gpu.Batch, seqLen = gpu.SeqLen, d = _c.DModel, vocab = _c.VocabSize, layers = _c.Layers;

        // Seed: ∂L/∂logits at the last position → ∂L/∂h = dlogits·U → the final norm's backward into the residual after the last block.
        var device = Targets(targets, reference);
        var examples = _ws.Identity(batch);
        var lse = _ws.Doubles("log-sum-exp", 2L * batch);
        var shape = new MetricShape(Code(targets.Kind), vocab, vocab, TwoColumns: false);
        _k.MetricValue(batch, gpu.LastLogits, device.Reference, examples, device.Answers, device.Wrongs, device.Low, device.High,
            _ws.Doubles("metric values", batch), lse, shape);
        var dLogits = _ws.Floats("logit gradients", (long)batch * vocab);
        _k.MetricGradient(batch * vocab, gpu.LastLogits, device.Reference, examples, device.Answers, device.Wrongs, device.Low, device.High,
            lse, dLogits, shape);
        var dh = _ws.Floats("final norm gradient", (long)batch * d);
        Gemm(dLogits, new GemmShape(batch, vocab, d, Weights.Unembedding.Offset, false, false, -1, GemmEpilogue.Plain, default), dh,
            _ws.Empty, _ws.Empty);
        var top = g.DResidPre(layers);
        top.MemSetToZero();
        _k.NormBackward(batch, W, gpu.ResidPre(layers), _ws.Empty, dh, top, d, Weights.FinalNormWeight.Offset, _c.NormEps,
            _c.Norm == NormKind.LayerNorm, false, new RowMap(1, seqLen, seqLen - 1));
        _finite.Begin(layers + 1, batch);
        _finite.Check(top, batch, "backward", layers, "the gradient at the final norm");
        BackwardLayers(gpu, g, layers - 1);
        _finite.End();
        g.ValidThroughLayer = layers - 1;
    }

    /// <inheritdoc/>
    public void BackwardDroppingLayer(IRunCache run, IGradientCache full, int droppedLayer, IGradientCache gradients)
    {
        var gpu = Own(run, nameof(run));
        var f = Own(full, nameof(full));
        var g = Own(gradients, nameof(gradients));
        if (f.ValidThroughLayer != _c.Layers - 1) throw new ArgumentException("the full gradients must come from Backward", nameof(full));
        if (ReferenceEquals(f, g)) throw new ArgumentException("write GradDrop gradients into a second cache", nameof(gradients));
        if (g.Batch != gpu.Batch || g.SeqLen != gpu.SeqLen || f.Batch != gpu.Batch || f.SeqLen != gpu.SeqLen)
            throw new ArgumentException("gradient caches shaped for another run");
        ArgumentOutOfRangeException.ThrowIfNegative(droppedLayer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(droppedLayer, _c.Layers);
        EnsureRotary(gpu.SeqLen);
        // Detaching block l's write leaves every gradient above l unchanged; within block l nothing receives a
        // gradient and resid_pre of l receives the skip path's gradient, the one at resid_post of l.
        int l = droppedLayer;
        foreach (var view in new[] { g.DQ(l), g.DK(l), g.DV(l), g.DZ(l), g.DAttnOut(l), g.DAct(l), g.DMlpOut(l), g.DProbs(l) })
            view.MemSetToZero();
        f.DResidPre(l + 1).CopyTo(g.DResidPre(l));
        _finite.Begin(l, gpu.Batch);
        BackwardLayers(gpu, g, l - 1);
        _finite.End();
        g.ValidThroughLayer = l;
    }

    /// <summary>Backward through blocks <paramref name="fromLayer"/> down to 0 (∂L/∂output of block l read from DResidPre[l + 1]),
    /// one finite check per block in the pass the caller began.</summary>
    private void BackwardLayers(GpuRun run, GpuGradients g, int fromLayer)
    {
        for (int l = fromLayer; l >= 0; l--)
        {
            LayerBackward(run, g, l);
            _finite.Check(g.DResidPre(l), run.Batch, "backward", l, "the gradient of the residual stream entering the block");
        }
    }

    private void LayerBackward(GpuRun run, GpuGradients g, int l)
    {
        var lw = Weights.Layers[l];
        int rows = run.Batch * run.SeqLen, d = _c.DModel, dMlp = _c.DMlp, n = rows * d;
        var dX = g.DResidPre(l + 1);
        var dResid = g.DResidPre(l);
        bool layerNorm = _c.Norm == NormKind.LayerNorm;
        var identity = RowMap.Identity(rows);

        // MLP: ∂L/∂mlp_out = ∂L/∂resid_post; neurons; pre-activations; the MLP norm's output.
        dX.CopyTo(g.DMlpOut(l));
        TransposedProduct(dX, rows, lw.WOut, g.DAct(l), accumulate: false);
        var dUp = _ws.Floats("up gradient", (long)rows * dMlp);
        var dGate = _c.GatedMlp ? _ws.Floats("gate gradient", (long)rows * dMlp) : _ws.Empty;
        _k.ActivationBackward(rows * dMlp, run.Up(l), run.Gate(l), g.DAct(l), dUp, dGate, Kind(_c.Activation));
        var dH2 = _ws.Floats("norm gradient", n);
        TransposedProduct(dUp, rows, lw.WIn, dH2, accumulate: false);
        if (_c.GatedMlp) TransposedProduct(dGate, rows, lw.WGate, dH2, accumulate: true);

        // ∂L/∂attn_out: the residual gradient at the MLP's input (sequential) or at the block output (parallel).
        var dAttn = g.DAttnOut(l);
        dX.CopyTo(dAttn);
        if (_c.ParallelResidual)
        {
            dX.CopyTo(dResid);
            _k.NormBackward(rows, W, run.ResidPre(l), _ws.Empty, dH2, dResid, d, lw.MlpNormWeight.Offset, _c.NormEps, layerNorm, false, identity);
        }
        else
        {
            _k.NormBackward(rows, W, run.ResidPre(l), run.AttnOut(l), dH2, dAttn, d, lw.MlpNormWeight.Offset, _c.NormEps, layerNorm, true, identity);
            dAttn.CopyTo(dResid);
        }

        // Attention: z, probabilities, q/k/v after rotary, then back through rotary and the projections.
        TransposedProduct(dAttn, rows, lw.Wo, g.DZ(l), accumulate: false);
        var shape = new AttentionBackwardShape(run.Batch, run.SeqLen, _c.Heads, _c.GroupSize, _c.HeadDim, _c.QueryWidth, _c.KvWidth,
            1f / MathF.Sqrt(_c.HeadDim));
        _k.AttentionRows(run.Batch * _c.Heads * run.SeqLen, run.Q(l), run.K(l), run.V(l), run.Probs(l), g.DZ(l), g.DProbs(l), g.DScores, g.DQ(l), shape);
        _k.AttentionKeys(run.Batch * _c.KvHeads * run.SeqLen, run.Q(l), run.Probs(l), g.DZ(l), g.DScores, g.DK(l), g.DV(l), shape);
        // The cache keeps ∂L/∂q and ∂L/∂k after rotary (the nodes' values are after rotary); the projections need them
        // before it, so with rotary invert a copy; without, read the cached gradients directly.
        var dQ = g.DQ(l);
        var dK = g.DK(l);
        if (_c.Rotary != RotaryStyle.None)
        {
            dQ = _ws.Floats("query gradient", (long)rows * _c.QueryWidth);
            dK = _ws.Floats("key gradient", (long)rows * _c.KvWidth);
            g.DQ(l).CopyTo(dQ);
            g.DK(l).CopyTo(dK);
            Rotate(dQ, rows, run.SeqLen, 0, _c.Heads, inverse: true);
            Rotate(dK, rows, run.SeqLen, 0, _c.KvHeads, inverse: true);
        }
        var dH1 = _ws.Floats("norm gradient", n);
        TransposedProduct(dQ, rows, lw.Wq, dH1, accumulate: false);
        TransposedProduct(dK, rows, lw.Wk, dH1, accumulate: true);
        TransposedProduct(g.DV(l), rows, lw.Wv, dH1, accumulate: true);
        _k.NormBackward(rows, W, run.ResidPre(l), _ws.Empty, dH1, dResid, d, lw.AttnNormWeight.Offset, _c.NormEps, layerNorm, false, identity);
    }

    /// <summary>dX (+)= dY·Wᵀ for W [in, out] in the slab: the activation-only backward of y = x·W.</summary>
    private void TransposedProduct(ArrayView<float> dy, int rows, TensorRef w, ArrayView<float> dx, bool accumulate) =>
        Gemm(dy, new GemmShape(rows, w.Cols, w.Rows, w.Offset, true, accumulate, -1, GemmEpilogue.Plain, default), dx, _ws.Empty, _ws.Empty);
}
