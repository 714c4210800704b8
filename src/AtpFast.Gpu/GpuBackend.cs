using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using AtpFast.Kernels;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace AtpFast.Gpu;

/// <summary>
/// The ILGPU backend: the same passes as the CPU backend (cached forward, activation-only backward, GradDrop, attribution
/// products with the QK fix, exact patching with prefix reuse) as explicit kernels (<c>native-kernels/AtpFast.Kernels</c>)
/// on a CUDA device, or on ILGPU's CPU accelerator for tests. The weights are uploaded once as one slab; runs and
/// gradients live in device buffers laid out from the model and batch shape; only metrics, node values asked for and
/// per-node scores come back to the host. Every row is computed by the same kernel in the same order wherever it is
/// computed, so patching a node with its own value gives exactly 0, as on the CPU.
/// Matrix products: the strict fp32 GEMM on the CPU accelerator, the tiled fp32 GEMM on CUDA
/// (<see cref="Precision.Float32"/>), tensor cores for <see cref="Precision.Tf32"/> and <see cref="Precision.Bf16"/>.
/// </summary>
public sealed partial class GpuBackend : IBackend
{
    private readonly Context _context;
    private readonly Accelerator _acc;
    private readonly KernelSet _k;
    private readonly ModelConfig _c;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _slab;
    private readonly DeviceWorkspace _ws;
    private readonly FiniteChecks _finite;
    private readonly bool _cuda;
    private MemoryBuffer1D<float, Stride1D.Dense>? _cos, _sin;
    private int _rotaryPositions;
    private GpuRun? _plainRun;

    private GpuBackend(ModelWeights weights, Context context, Accelerator accelerator, Precision precision)
    {
        if (precision == Precision.Float64)
            throw new AtpFastException("the GPU backend runs fp32, TF32 or BF16; fp64 is the CPU backend's (use --backend cpu)");
        _context = context;
        _acc = accelerator;
        _cuda = accelerator.AcceleratorType == AcceleratorType.Cuda;
        // Loads the kernels, only the GEMM this precision uses; throws when the device cannot run it (before any upload).
        _k = new KernelSet(accelerator, precision);
        Weights = weights;
        Precision = precision;
        _c = weights.Config;
        _slab = Allocate<float>(weights.Slab.Length, "the weights");
        _slab.View.CopyFromCPU(weights.Slab);
        _ws = new DeviceWorkspace(this);
        _finite = new FiniteChecks(this);
        string precisionName = precision switch { Precision.Tf32 => "tf32", Precision.Bf16 => "bf16", _ => "fp32" };
        Name = _cuda ? $"cuda-{precisionName}" : $"ilgpu-cpu-{precisionName}";
        DeviceName = accelerator.Name;
    }

    /// <summary>A backend on the first CUDA device.</summary>
    /// <exception cref="AtpFastException">No CUDA device is usable (the message says what ILGPU found).</exception>
    public static GpuBackend CreateCuda(ModelWeights weights, Precision precision = Precision.Float32) =>
        TryCreateCuda(weights, precision, out var reason) ?? throw new AtpFastException(reason!);

    /// <summary>A backend on the first CUDA device, or null with the reason.</summary>
    public static GpuBackend? TryCreateCuda(ModelWeights weights, Precision precision, out string? reason)
    {
        ArgumentNullException.ThrowIfNull(weights);
        CudaDriver.EnsureResolver();
        Context? context = null;
        Accelerator? accelerator = null;
        try
        {
            context = Context.Create(b => b.Cuda().EnableAlgorithms());
            var device = context.Devices.FirstOrDefault(d => d.AcceleratorType == AcceleratorType.Cuda);
            if (device is null)
            {
                reason = "no CUDA device: ILGPU found none (is libcuda.so.1 installed and a GPU visible?)";
                context.Dispose();
                return null;
            }
            reason = null;
            accelerator = device.CreateAccelerator(context);
            return new GpuBackend(weights, context, accelerator, precision);
        }
        catch (Exception e)
        {
            accelerator?.Dispose();
            context?.Dispose();
            if (e is AtpFastException) throw;
            reason = $"the CUDA device could not be opened: {e.Message}";
            return null;
        }
    }

    /// <summary>A backend on ILGPU's CPU accelerator: the kernels run (slowly) on the CPU, for tests without a GPU.
    /// The default accelerator simulates warps of 2 threads (fast launches); TF32/BF16 need warps of 32.</summary>
    public static GpuBackend CreateCpuAccelerator(ModelWeights weights, Precision precision = Precision.Float32)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var context = Context.Create(b => b.CPU().EnableAlgorithms());
        var device = precision is Precision.Tf32 or Precision.Bf16 ? new CPUDevice(32, 4, 1) : new CPUDevice(2, 2, 2);
        Accelerator? accelerator = null;
        try
        {
            accelerator = device.CreateCPUAccelerator(context);
            return new GpuBackend(weights, context, accelerator, precision);
        }
        catch
        {
            accelerator?.Dispose();
            context.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <summary>The accelerator's name (e.g. the GPU model).</summary>
    public string DeviceName { get; }

    /// <inheritdoc/>
    public ModelWeights Weights { get; }

    /// <inheritdoc/>
    public Precision Precision { get; }

    private ArrayView<float> W => _slab.View;

    /// <inheritdoc/>
    public void Dispose()
    {
        _plainRun?.Dispose();
        _qkTables?.Dispose();
        _ws.Dispose();
        _cos?.Dispose();
        _sin?.Dispose();
        _slab.Dispose();
        _acc.Dispose();
        _context.Dispose();
    }

    // ---------------------------------------------------------------- memory

    /// <summary>Allocates device memory; running out is a clear error, never a crash.</summary>
    internal MemoryBuffer1D<T, Stride1D.Dense> Allocate<T>(long length, string what) where T : unmanaged
    {
        try
        {
            return _acc.Allocate1D<T>(Math.Max(1, length));
        }
        catch (Exception e) when (e is AcceleratorException or OutOfMemoryException or InsufficientExecutionStackException)
        {
            throw new AtpFastException(string.Create(CultureInfo.InvariantCulture,
                $"device memory exhausted allocating {length * Marshal.SizeOf<T>() / 1048576.0:F1} MiB for {what} on {_acc.Name}; use fewer pairs per batch"), e);
        }
    }

    /// <summary>Device memory available to caches: all of it on the CPU accelerator, the free memory on CUDA.</summary>
    private long FreeBytes() => _acc is CudaAccelerator cuda ? cuda.GetFreeMemory() : long.MaxValue / 4;

    /// <inheritdoc/>
    public int MaxBatch(int seqLen)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(seqLen, 1);
        long perExample = 4L * (2 * new RunLayout(_c, 1, seqLen).Length + 2 * new GradientLayout(_c, 1, seqLen).Length)
                          + 8L * 4 * _c.Heads * seqLen * seqLen;
        long budget = FreeBytes() / 10 * 7; // leave room for the patching work space
        long byIndex = int.MaxValue / Math.Max(new RunLayout(_c, 1, seqLen).Length, 1);
        return (int)Math.Clamp(Math.Min(budget / perExample, byIndex), 1, int.MaxValue);
    }

    // ---------------------------------------------------------------- validation

    private GpuRun Own(IRunCache run, string name) => Own<GpuRun>(run, name);

    private GpuGradients Own(IGradientCache gradients, string name) => Own<GpuGradients>(gradients, name);

    private TCache Own<TCache>(object? cache, string name) where TCache : class, IGpuCache
    {
        ArgumentNullException.ThrowIfNull(cache, name);
        if (cache is not TCache gpu || !ReferenceEquals(gpu.Owner, this))
            throw new ArgumentException($"{name} was not made by this backend", name);
        ObjectDisposedException.ThrowIf(gpu.Disposed, gpu);
        return gpu;
    }

    private GpuRun? ValidateTargets(MetricTargets targets, GpuRun run)
    {
        BackendChecks.Targets(_c, targets, run);
        return targets.KlReference is { } reference ? Own(reference, "KL reference") : null;
    }

    /// <summary>
    /// The NaN/infinity checks of one pass, without a host round trip per check: <see cref="Begin"/> clears one flag
    /// per slice (example or patched run) for every check the pass will make, <see cref="Check"/> launches
    /// <see cref="FiniteCheckKernel"/> into the check's own row of flags, and <see cref="End"/> reads all rows back at
    /// once and throws <see cref="NonFiniteValueException"/> for the first flagged check in pass order, naming its first
    /// flagged slice — what checking and synchronising after every layer reported. Later layers of a failing pass run on
    /// the non-finite values before the exception; no kernel indexes memory by a computed value, so that is harmless.
    /// </summary>
    private sealed class FiniteChecks(GpuBackend owner)
    {
        private readonly List<(int Offset, int Slices, string Pass, int Layer, string Where)> _checks = [];
        private ArrayView<int> _flags;
        private int _used;
        private int[] _host = [];

        /// <summary>Starts a pass of at most <paramref name="checks"/> checks of <paramref name="slices"/> slices each.</summary>
        public void Begin(int checks, int slices)
        {
            _checks.Clear();
            _used = 0;
            _flags = owner._ws.Ints("finite flags", (long)checks * slices);
            if (_flags.Length > 0) _flags.MemSetToZero();
        }

        /// <summary>Flags the slices of <paramref name="values"/> ([slices, length]) holding a non-finite value.</summary>
        public void Check(ArrayView<float> values, int slices, string pass, int layer, string where)
        {
            if (slices == 0) return;
            if (_used + slices > _flags.Length) throw new InvalidOperationException("a pass made more finite checks than it reserved");
            if (values.Length > 0) owner._k.FiniteCheck((int)values.Length, values, _flags.SubView(_used, slices), (int)(values.Length / slices));
            _checks.Add((_used, slices, pass, layer, where));
            _used += slices;
        }

        /// <summary>Reads the pass's flags back (one synchronisation) and throws for the first flagged check.</summary>
        public void End()
        {
            if (_used == 0) return;
            if (_host.Length < _used) _host = new int[Math.Max(_used, 2 * _host.Length)];
            _flags.SubView(0, _used).CopyToCPU(_host.AsSpan(0, _used));
            foreach (var (offset, slices, pass, layer, where) in _checks)
            {
                int bad = Array.IndexOf(_host, 1, offset, slices);
                if (bad >= 0) throw new NonFiniteValueException(pass, layer, bad - offset, where);
            }
        }
    }

    // ---------------------------------------------------------------- passes

    /// <inheritdoc/>
    public void Forward(ReadOnlySpan<int> tokenIds, int batch, int seqLen, Span<float> logits)
    {
        BackendChecks.TokenIds(_c, tokenIds, batch, seqLen);
        long rows = (long)batch * seqLen;
        if (logits.Length != rows * _c.VocabSize)
            throw new InvalidModelInputException($"logits buffer holds {logits.Length} floats, expected batch·seqLen·vocab = {rows * _c.VocabSize}");
        if (_plainRun is null || _plainRun.Batch != batch || _plainRun.SeqLen != seqLen)
        {
            _plainRun?.Dispose();
            _plainRun = new GpuRun(this, _acc, _c, batch, seqLen);
        }
        _finite.Begin(ChecksPerForward + 1, batch);
        RunInto(_plainRun, tokenIds);
        int n = (int)rows, d = _c.DModel, vocab = _c.VocabSize;
        var normed = _ws.Floats("normed", (long)n * d);
        _k.Norm(n, W, _plainRun.ResidPre(_c.Layers), normed, FinalNorm(RowMap.Identity(n)));
        var all = _ws.Floats("logits", (long)n * vocab);
        _k.Unembed(n * vocab, W, normed, _ws.EmptyInts, all, d, vocab, Weights.Unembedding.Offset, Weights.UnembeddingBias.Offset);
        _finite.Check(all, batch, "forward", _c.Layers, "logits");
        _finite.End();
        all.CopyToCPU(logits);
    }

    /// <inheritdoc/>
    public IRunCache Run(ReadOnlySpan<int> tokenIds, int batch, int seqLen)
    {
        BackendChecks.TokenIds(_c, tokenIds, batch, seqLen);
        if (batch > MaxBatch(seqLen) * 4L)
            throw new InvalidModelInputException($"a batch of {batch} × {seqLen} tokens does not fit on {_acc.Name}; use at most {MaxBatch(seqLen)} sequences per batch");
        var run = new GpuRun(this, _acc, _c, batch, seqLen);
        try
        {
            _finite.Begin(ChecksPerForward, batch);
            RunInto(run, tokenIds);
            _finite.End();
        }
        catch
        {
            run.Dispose();
            throw;
        }
        return run;
    }

    /// <summary>The finite checks <see cref="RunInto"/> makes: the embedding, each block, the last logits.</summary>
    private int ChecksPerForward => _c.Layers + 2;

    /// <summary>The cached forward pass into <paramref name="run"/>; its finite checks go to the pass the caller began.</summary>
    private void RunInto(GpuRun run, ReadOnlySpan<int> tokenIds)
    {
        int batch = run.Batch, seqLen = run.SeqLen, rows = batch * seqLen, d = _c.DModel;
        ArrayView<int> tokens = run.Tokens.View; // the contiguous view, whose copies take spans
        tokens.CopyFromCPU(tokenIds);
        EnsureRotary(seqLen);
        _k.Embedding(rows * d, W, run.Tokens.View, run.ResidPre(0), d, Weights.TokenEmbedding.Offset,
            _c.MaxPositions > 0 ? Weights.PositionEmbedding.Offset : -1, seqLen);
        _finite.Check(run.ResidPre(0), batch, "forward", -1, "embedding");
        var examples = _ws.Identity(batch);
        for (int l = 0; l < _c.Layers; l++)
        {
            var buffers = new LayerViews(
                Normed: _ws.Floats("normed", (long)rows * d), Mid: _ws.Floats("mid", (long)rows * d), Out: _ws.Empty,
                Xq: _ws.Empty, Q: run.Q(l), K: run.K(l), V: run.V(l), Probs: run.Probs(l), Z: run.Z(l), AttnOut: run.AttnOut(l),
                Up: run.Up(l), Gate: run.Gate(l), Act: run.Act(l), MlpOut: run.MlpOut(l));
            var step = new Step(l, batch, seqLen, 0, seqLen, 0, seqLen, examples, run, KeepProbabilities: true);
            Layer(step, buffers, run.ResidPre(l), run.ResidPre(l + 1), null);
            _finite.Check(run.ResidPre(l + 1), batch, "forward", l, "the residual stream after the block");
        }
        // Final norm of the last positions and their full-vocabulary logits (what every metric reads).
        var normed = _ws.Floats("normed", (long)batch * d);
        _k.Norm(batch, W, run.ResidPre(_c.Layers), normed, FinalNorm(new RowMap(1, seqLen, seqLen - 1)));
        _k.Unembed(batch * _c.VocabSize, W, normed, _ws.EmptyInts, run.LastLogits, d, _c.VocabSize, Weights.Unembedding.Offset,
            Weights.UnembeddingBias.Offset);
        _finite.Check(run.LastLogits, batch, "forward", _c.Layers, "the last position's logits");
    }

    /// <inheritdoc/>
    public void Metric(IRunCache run, MetricTargets targets, Span<double> values)
    {
        var gpu = Own(run, nameof(run));
        var reference = ValidateTargets(targets, gpu);
        if (values.Length != gpu.Batch) throw new ArgumentException($"values holds {values.Length}, expected {gpu.Batch}");
        MetricInto(gpu, targets, Targets(targets, reference), values);
    }

    /// <summary>The metric of every example of <paramref name="run"/> from its cached last logits, into
    /// <paramref name="values"/> [batch].</summary>
    private void MetricInto(GpuRun run, MetricTargets targets, DeviceTargets device, Span<double> values)
    {
        var result = _ws.Doubles("metric values", run.Batch);
        _k.MetricValue(run.Batch, run.LastLogits, device.Reference, _ws.Identity(run.Batch), device.Answers, device.Wrongs, device.Low,
            device.High, result, _ws.Doubles("log-sum-exp", 2L * run.Batch), new MetricShape(Code(targets.Kind), _c.VocabSize, _c.VocabSize, TwoColumns: false));
        result.CopyToCPU(values);
    }

    /// <summary>Metric targets uploaded to the device.</summary>
    private readonly record struct DeviceTargets(ArrayView<int> Answers, ArrayView<int> Wrongs, ArrayView<double> Low, ArrayView<double> High,
        ArrayView<float> Reference);

    private DeviceTargets Targets(MetricTargets targets, GpuRun? reference)
    {
        int batch = targets.Batch;
        var answers = _ws.Ints("answers", batch);
        answers.CopyFromCPU(targets.Answers);
        var wrongs = _ws.Ints("wrongs", batch);
        wrongs.CopyFromCPU(targets.Wrongs);
        var low = _ws.Doubles("normalization low", batch);
        var high = _ws.Doubles("normalization high", batch);
        if (targets.NormalizationLow is { } lo && targets.NormalizationHigh is { } hi)
        {
            low.CopyFromCPU(lo);
            high.CopyFromCPU(hi);
        }
        return new DeviceTargets(answers, wrongs, low, high, reference?.LastLogits ?? _ws.Empty);
    }

    private static MetricCode Code(MetricKind kind) => kind switch
    {
        MetricKind.LogitDiff => MetricCode.LogitDiff,
        MetricKind.LogProb => MetricCode.LogProb,
        MetricKind.Prob => MetricCode.Prob,
        MetricKind.Kl => MetricCode.Kl,
        MetricKind.NormalizedLogitDiff => MetricCode.NormalizedLogitDiff,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <inheritdoc/>
    public void ReadNode(IRunCache run, int example, Node node, Span<double> values)
    {
        var gpu = Own(run, nameof(run));
        BackendChecks.Node(_c, gpu.Batch, gpu.SeqLen, example, node, values.Length);
        var (array, width) = gpu.Site(node.Type, node.Layer);
        Read(array.SubView((long)(example * gpu.SeqLen + node.Position) * width + BackendChecks.FeatureOffset(_c, node), values.Length), values);
    }

    /// <inheritdoc/>
    public void ReadGradient(IGradientCache gradients, int example, Node node, Span<double> values)
    {
        var g = Own(gradients, nameof(gradients));
        BackendChecks.Node(_c, g.Batch, g.SeqLen, example, node, values.Length);
        if (node.Layer > g.ValidThroughLayer)
            throw new ArgumentException($"the gradient cache holds layers 0..{g.ValidThroughLayer}, not {node.Name}", nameof(node));
        var array = g.Site(node.Type, node.Layer);
        int width = (int)(array.Length / (g.Batch * g.SeqLen));
        Read(array.SubView((long)(example * g.SeqLen + node.Position) * width + BackendChecks.FeatureOffset(_c, node), values.Length), values);
    }

    private static void Read(ArrayView<float> view, Span<double> values)
    {
        var host = new float[values.Length];
        view.CopyToCPU(host);
        for (int i = 0; i < host.Length; i++) values[i] = host[i];
    }

    /// <inheritdoc/>
    public void WriteNode(IRunCache run, int example, Node node, ReadOnlySpan<double> values)
    {
        var gpu = Own(run, nameof(run));
        BackendChecks.Node(_c, gpu.Batch, gpu.SeqLen, example, node, values.Length);
        var (array, width) = gpu.Site(node.Type, node.Layer);
        var host = new float[values.Length];
        for (int i = 0; i < host.Length; i++) host[i] = (float)values[i];
        array.SubView((long)(example * gpu.SeqLen + node.Position) * width + BackendChecks.FeatureOffset(_c, node), host.Length).CopyFromCPU(host);
        gpu.Version++;
    }

    /// <inheritdoc/>
    public IRunCache Clone(IRunCache run)
    {
        var gpu = Own(run, nameof(run));
        var copy = new GpuRun(this, _acc, _c, gpu.Batch, gpu.SeqLen);
        gpu.Buffer.View.CopyTo(copy.Buffer.View);
        gpu.Tokens.View.CopyTo(copy.Tokens.View);
        return copy;
    }

    // ---------------------------------------------------------------- one block

    /// <summary>The shape of one block's computation, as in the CPU backend: R sequences of S positions starting at
    /// absolute position P; keys and values for local positions [0, Kb), queries, attention, the output projection and
    /// the MLP for [Qa, Qb); keys below P from <see cref="Prefix"/>.</summary>
    private readonly record struct Step(int Layer, int R, int S, int P, int Kb, int Qa, int Qb, ArrayView<int> Examples, GpuRun Prefix,
        bool KeepProbabilities);

    /// <summary>Where one block writes: a run's arrays or patching work space (Q/K/V: R·Kb rows; the rest R·(Qb − Qa)).
    /// <see cref="Xq"/> holds the gathered query-side residual rows when Qb − Qa &lt; S.</summary>
    private readonly record struct LayerViews(ArrayView<float> Normed, ArrayView<float> Mid, ArrayView<float> Out, ArrayView<float> Xq,
        ArrayView<float> Q, ArrayView<float> K, ArrayView<float> V, ArrayView<float> Probs, ArrayView<float> Z, ArrayView<float> AttnOut,
        ArrayView<float> Up, ArrayView<float> Gate, ArrayView<float> Act, ArrayView<float> MlpOut);

    /// <summary>One transformer block: xOut = block(xIn) on the rows <paramref name="s"/> selects (xOut may be xIn),
    /// with patched values injected at each site when <paramref name="inject"/> is given. The residual adds are fused into
    /// the output projections' epilogues unless a patch lands on attn_out or mlp_out (then GEMM, injection, add: the same
    /// values either way).</summary>
    private void Layer(in Step s, in LayerViews b, ArrayView<float> xIn, ArrayView<float> xOut, GpuInjector? inject)
    {
        var lw = Weights.Layers[s.Layer];
        int d = _c.DModel, nk = s.Kb, nq = s.Qb - s.Qa, kRows = s.R * nk, qRows = s.R * nq;

        inject?.Apply(NodeType.ResidPre, s.Layer, xIn, d, s.S, 0, nk);
        _k.Norm(kRows, W, xIn, b.Normed, BlockNorm(lw.AttnNormWeight, lw.AttnNormBias, new RowMap(nk, s.S, 0)));
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
        var shape = new AttentionShape(_c.Heads, _c.GroupSize, _c.HeadDim, _c.QueryWidth, _c.KvWidth, s.P, nk, s.Qa, s.Qb, s.P + s.S,
            1f / MathF.Sqrt(_c.HeadDim), s.KeepProbabilities);
        _k.Attention(s.R * _c.Heads * nq, b.Q, b.K, b.V, s.Prefix.K(s.Layer), s.Prefix.V(s.Layer), s.Examples, b.Probs, b.Z, shape);
        inject?.Apply(NodeType.HeadOutput, s.Layer, b.Z, _c.QueryWidth, nq, s.Qa, nq);

        // xq: the query-side rows of the block input, compact.
        var xq = xIn;
        if (nq != s.S)
        {
            _k.RowCopy(qRows * d, xIn, b.Xq, _ws.EmptyInts, d, new RowMap(nq, s.S, s.Qa), new RowMap(nq, nq, 0));
            xq = b.Xq;
        }
        // mid = xq + attn_out (the residual after attention; for parallel blocks only the sum the MLP output is added to).
        if (inject?.Has(NodeType.AttnOut, s.Layer) == true)
        {
            Linear(b.Z, qRows, lw.Wo, lw.Bo, b.AttnOut);
            inject.Apply(NodeType.AttnOut, s.Layer, b.AttnOut, d, nq, s.Qa, nq);
            _k.Add(qRows * d, xq, b.AttnOut, b.Mid);
        }
        else
        {
            Gemm(b.Z, new GemmShape(qRows, _c.QueryWidth, d, lw.Wo.Offset, false, false, lw.Bo.Offset, GemmEpilogue.Residual, default),
                b.AttnOut, b.Mid, xq);
        }
        var mlpNorm = _c.ParallelResidual
            ? BlockNorm(lw.MlpNormWeight, lw.MlpNormBias, new RowMap(nq, s.S, s.Qa))
            : BlockNorm(lw.MlpNormWeight, lw.MlpNormBias, RowMap.Identity(qRows));
        _k.Norm(qRows, W, _c.ParallelResidual ? xIn : b.Mid, b.Normed, mlpNorm);
        if (_c.GatedMlp) Linear(b.Normed, qRows, lw.WGate, lw.BGate, b.Gate);
        Gemm(b.Normed, new GemmShape(qRows, d, _c.DMlp, lw.WIn.Offset, false, false, lw.BIn.Offset, GemmEpilogue.Activation, Kind(_c.Activation)),
            b.Up, b.Act, b.Gate);
        inject?.Apply(NodeType.Neuron, s.Layer, b.Act, _c.DMlp, nq, s.Qa, nq);

        var target = nq == s.S ? xOut : b.Out;
        if (inject?.Has(NodeType.MlpOut, s.Layer) == true)
        {
            Linear(b.Act, qRows, lw.WOut, lw.BOut, b.MlpOut);
            inject.Apply(NodeType.MlpOut, s.Layer, b.MlpOut, d, nq, s.Qa, nq);
            _k.Add(qRows * d, b.Mid, b.MlpOut, target);
        }
        else
        {
            Gemm(b.Act, new GemmShape(qRows, _c.DMlp, d, lw.WOut.Offset, false, false, lw.BOut.Offset, GemmEpilogue.Residual, default),
                b.MlpOut, target, b.Mid);
        }
        if (nq != s.S) _k.RowCopy(qRows * d, b.Out, xOut, _ws.EmptyInts, d, new RowMap(nq, nq, 0), new RowMap(nq, s.S, s.Qa));
    }

    private static ActivationKind Kind(MlpActivation activation) => activation switch
    {
        MlpActivation.GeluErf => ActivationKind.GeluErf,
        MlpActivation.GeluTanh => ActivationKind.GeluTanh,
        MlpActivation.Relu => ActivationKind.Relu,
        _ => ActivationKind.SwiGlu,
    };

    private NormShape BlockNorm(TensorRef weight, TensorRef bias, RowMap input) =>
        new(_c.DModel, weight.Offset, bias.Offset, _c.NormEps, _c.Norm == NormKind.LayerNorm, input);

    private NormShape FinalNorm(RowMap input) => BlockNorm(Weights.FinalNormWeight, Weights.FinalNormBias, input);

    /// <summary>y = x·W + b for x [rows, in] and W [in, out] in the slab.</summary>
    private void Linear(ArrayView<float> x, int rows, TensorRef w, TensorRef b, ArrayView<float> y) =>
        Gemm(x, new GemmShape(rows, w.Rows, w.Cols, w.Offset, false, false, b.Offset, GemmEpilogue.Plain, default), y, _ws.Empty, _ws.Empty);

    /// <summary>One GEMM on the kernel this backend's precision and device select (<see cref="KernelSet.Gemm"/>).</summary>
    private void Gemm(ArrayView<float> a, GemmShape s, ArrayView<float> c, ArrayView<float> c2, ArrayView<float> aux) =>
        _k.RunGemm(a, W, c, c2, aux, s);

    private void EnsureRotary(int positions)
    {
        if (_c.Rotary == RotaryStyle.None || positions <= _rotaryPositions) return;
        int n = Math.Max(positions, 2 * _rotaryPositions);
        var (cos, sin) = _c.RotaryTable(n);
        _cos?.Dispose();
        _sin?.Dispose();
        _cos = Allocate<float>(cos.Length, "rotary tables");
        _sin = Allocate<float>(sin.Length, "rotary tables");
        _cos.View.CopyFromCPU(cos);
        _sin.View.CopyFromCPU(sin);
        _rotaryPositions = n;
    }

    private void Rotate(ArrayView<float> qk, int rows, int rowsPerSeq, int firstPosition, int heads, bool inverse)
    {
        int half = _c.RotaryDims / 2;
        _k.Rotary(rows * heads * half, qk, _cos!.View, _sin!.View, heads, _c.HeadDim, half, _c.Rotary == RotaryStyle.Interleaved,
            rowsPerSeq, firstPosition, inverse);
    }

    /// <summary>Resolves ILGPU's <c>cuda</c> import to <c>libcuda.so.1</c>: hosts that ship only the versioned driver
    /// library otherwise show no CUDA device.</summary>
    private static class CudaDriver
    {
        private static int _registered;

        public static void EnsureResolver()
        {
            if (Interlocked.Exchange(ref _registered, 1) == 1) return;
            AssemblyLoadContext.Default.ResolvingUnmanagedDll += (_, name) =>
                name is "cuda" or "libcuda" && OperatingSystem.IsLinux() && NativeLibrary.TryLoad("libcuda.so.1", out var handle) ? handle : IntPtr.Zero;
        }
    }
}
