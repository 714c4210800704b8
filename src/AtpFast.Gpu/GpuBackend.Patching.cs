using AtpFast.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace AtpFast.Gpu;

/// <summary>Exact activation patching on the device, planned by <see cref="PatchPlan"/> exactly as the CPU backend
/// plans it: runs sharing a start are stacked, each starts from the cached base run's residual stream at its layer and
/// position, patched values are injected by one segment copy per site, and only the metric's columns are unembedded.</summary>
public sealed partial class GpuBackend
{
    /// <summary>Rows (runs × positions) stacked into one batch of patched runs.</summary>
    private const int RowsPerBatch = 2048;

    /// <inheritdoc/>
    public void PatchedMetric(IRunCache baseRun, IRunCache sourceRun, ReadOnlySpan<PatchRun> runs, MetricTargets targets,
        Span<double> values, PatchingOptions options = default)
    {
        var base_ = Own(baseRun, nameof(baseRun));
        var source = Own(sourceRun, nameof(sourceRun));
        BackendChecks.SameShape(base_, source, "patching");
        var reference = ValidateTargets(targets, base_);
        if (values.Length != runs.Length) throw new ArgumentException($"values holds {values.Length}, expected {runs.Length}");
        EnsureRotary(base_.SeqLen);
        var space = new NodeSpace(_c, base_.SeqLen);
        int seqLen = base_.SeqLen, layers = _c.Layers;
        var device = Targets(targets, reference);
        double[]? baseMetric = null; // computed only if some run cannot change it

        var plans = new List<(int Index, PatchPlan Plan, int Example)>(runs.Length);
        for (int i = 0; i < runs.Length; i++)
        {
            var run = runs[i];
            if ((uint)run.Example >= (uint)base_.Batch)
                throw new ArgumentOutOfRangeException(nameof(runs), $"patched run {i}: example {run.Example} outside the batch of {base_.Batch}");
            var nodes = run.Nodes.Span;
            if (nodes.Length == 0) throw new ArgumentException($"patched run {i} patches no node", nameof(runs));
            foreach (var node in nodes) space.Id(node); // range check
            var plan = PatchPlan.For(nodes, layers, seqLen, options.PrefixReuse);
            if (plan.NoEffect)
            {
                if (baseMetric is null) MetricInto(base_, targets, device, baseMetric = new double[base_.Batch]);
                values[i] = baseMetric[run.Example];
            }
            else
            {
                plans.Add((i, plan, run.Example));
            }
        }
        plans.Sort((a, b) =>
        {
            int c = a.Plan.Layer.CompareTo(b.Plan.Layer);
            if (c == 0) c = a.Plan.Position.CompareTo(b.Plan.Position);
            if (c == 0) c = a.Plan.OnePosition.CompareTo(b.Plan.OnePosition);
            if (c == 0) c = a.Example.CompareTo(b.Example);
            return c == 0 ? a.Index.CompareTo(b.Index) : c;
        });

        int maxRuns = options.MaxRunsPerBatch > 0 ? options.MaxRunsPerBatch : int.MaxValue;
        var runArray = runs.ToArray();
        var results = new double[runs.Length];
        for (int start = 0; start < plans.Count;)
        {
            var first = plans[start].Plan;
            int limit = Math.Min(maxRuns, Math.Max(1, RowsPerBatch / (seqLen - first.Position)));
            int end = start + 1;
            while (end < plans.Count && end - start < limit && plans[end].Plan.Layer == first.Layer && plans[end].Plan.Position == first.Position
                   && plans[end].Plan.OnePosition == first.OnePosition) end++;
            RunBatch(base_, source, runArray, plans.GetRange(start, end - start), targets, device, results);
            start = end;
        }
        foreach (var (index, _, _) in plans) values[index] = results[index];
    }

    private void RunBatch(GpuRun base_, GpuRun source, PatchRun[] runs, List<(int Index, PatchPlan Plan, int Example)> batch,
        MetricTargets targets, DeviceTargets device, double[] results)
    {
        int seqLen = base_.SeqLen, d = _c.DModel, layers = _c.Layers;
        var plan = batch[0].Plan;
        int start = plan.Layer, p = plan.Position, s = seqLen - p, count = batch.Count, rows = count * s;
        var examplesHost = batch.Select(b => b.Example).ToArray();
        var examples = _ws.Ints("patched examples", count);
        examples.CopyFromCPU(examplesHost);
        var injector = new GpuInjector(this, _c, source, seqLen, p);
        for (int r = 0; r < count; r++)
        {
            foreach (var node in runs[batch[r].Index].Nodes.Span) injector.Add(r, examplesHost[r], node);
        }

        var x = _ws.Floats("patched residual", (long)rows * d);
        _k.RowCopy(rows * d, base_.ResidPre(start), x, examples, d, new RowMap(s, seqLen, p), new RowMap(s, s, 0));
        var buffers = new LayerViews(
            Normed: _ws.Floats("normed", (long)rows * d), Mid: _ws.Floats("mid", (long)rows * d), Out: _ws.Floats("out", (long)rows * d),
            Xq: _ws.Floats("xq", (long)rows * d),
            Q: _ws.Floats("q", (long)rows * _c.QueryWidth), K: _ws.Floats("k", (long)rows * _c.KvWidth), V: _ws.Floats("v", (long)rows * _c.KvWidth),
            Probs: _ws.Floats("probability rows", (long)rows * _c.Heads * seqLen), Z: _ws.Floats("z", (long)rows * _c.QueryWidth),
            AttnOut: _ws.Floats("attn_out", (long)rows * d), Up: _ws.Floats("up", (long)rows * _c.DMlp),
            Gate: _c.GatedMlp ? _ws.Floats("gate", (long)rows * _c.DMlp) : _ws.Empty, Act: _ws.Floats("act", (long)rows * _c.DMlp),
            MlpOut: _ws.Floats("mlp_out", (long)rows * d));

        _finite.Begin(layers - start, count);
        for (int l = start; l < layers; l++)
        {
            bool onePosition = plan.OnePosition && l == start, last = l == layers - 1;
            var step = onePosition
                ? new Step(l, count, s, p, 1, 0, 1, examples, base_, false)
                : new Step(l, count, s, p, s, last ? s - 1 : 0, s, examples, base_, false);
            Layer(step, buffers, x, x, injector);
            if (onePosition && s > 1)
            {
                // Later positions of block l are unchanged: take the cached residual after the block.
                _k.RowCopy(count * (s - 1) * d, base_.ResidPre(l + 1), x, examples, d, new RowMap(s - 1, seqLen, p + 1), new RowMap(s - 1, s, 1));
            }
            _finite.Check(x.SubView(0, (long)rows * d), count, "patched forward", l, "the residual stream after the block (example = patched run of the batch)");
        }

        // The last position: final norm, then only the columns the metric reads.
        var normed = buffers.Normed;
        _k.Norm(count, W, x, normed, FinalNorm(new RowMap(1, s, s - 1)));
        bool two = targets.NeedsOnlyTwoColumns;
        int columns = two ? 2 : _c.VocabSize;
        var columnIds = _ws.EmptyInts;
        if (two)
        {
            columnIds = _ws.Ints("metric columns", 2L * count);
            columnIds.CopyFromCPU([.. examplesHost.SelectMany(e => new[] { targets.Answers[e], targets.Wrongs[e] })]);
        }
        var logits = _ws.Floats("patched logits", (long)count * columns);
        _k.Unembed(count * columns, W, normed, columnIds, logits, d, columns, Weights.Unembedding.Offset, Weights.UnembeddingBias.Offset);
        var values = _ws.Doubles("patched metrics", count);
        _k.MetricValue(count, logits, device.Reference, examples, device.Answers, device.Wrongs, device.Low, device.High, values,
            _ws.Doubles("log-sum-exp", 2L * count), new MetricShape(Code(targets.Kind), columns, _c.VocabSize, two));
        _finite.End();
        var host = new double[count];
        values.CopyToCPU(host);
        for (int r = 0; r < count; r++) results[batch[r].Index] = host[r];
    }
}

/// <summary>
/// The patches of one batch of runs, by layer and site: at each site, one segment copy replaces the recomputed value of
/// every patched node (run r, its positions inside the rows being computed) by the source run's value.
/// </summary>
internal sealed class GpuInjector(GpuBackend backend, ModelConfig c, GpuRun source, int seqLen, int firstPosition)
{
    private readonly Dictionary<(int Layer, NodeType Type), List<(int Run, int Example, Node Node)>> _sites = [];

    public void Add(int run, int example, Node node)
    {
        if (!_sites.TryGetValue((node.Layer, node.Type), out var list)) _sites[(node.Layer, node.Type)] = list = [];
        list.Add((run, example, node));
    }

    public bool Has(NodeType type, int layer) => _sites.ContainsKey((layer, type));

    /// <summary>Injects into <paramref name="buffer"/> [runs·rowsPerRun, width], whose row r·rowsPerRun + i holds local
    /// position <paramref name="firstLocal"/> + i for i &lt; <paramref name="count"/>.</summary>
    public void Apply(NodeType type, int layer, ArrayView<float> buffer, int width, int rowsPerRun, int firstLocal, int count)
    {
        if (!_sites.TryGetValue((layer, type), out var list)) return;
        var (array, sourceWidth) = source.Site(type, layer);
        int length = type <= NodeType.HeadOutput ? c.HeadDim : type == NodeType.Neuron ? 1 : sourceWidth;
        var from = new List<int>();
        var to = new List<int>();
        foreach (var (run, example, node) in list)
        {
            int offset = BackendChecks.FeatureOffset(c, node);
            int first = node.IsAllPositions ? 0 : node.Position, end = node.IsAllPositions ? seqLen : node.Position + 1;
            for (int t = Math.Max(first, firstPosition + firstLocal); t < Math.Min(end, firstPosition + firstLocal + count); t++)
            {
                from.Add((example * seqLen + t) * sourceWidth + offset);
                to.Add((run * rowsPerRun + t - firstPosition - firstLocal) * width + offset);
            }
        }
        backend.CopySegments(array, buffer, [.. from], [.. to], length);
    }
}
