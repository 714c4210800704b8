namespace AtpFast.Cpu;

/// <summary>
/// Exact activation patching, planned by <see cref="PatchPlan"/>. Each patched run starts at the earliest patched
/// layer l and position p: the residual stream entering l is the cached base run's, positions before p cannot
/// change (cached keys and values serve them), and only the last position is needed from the last block and the
/// unembedding (only the metric's columns for the logit differences). A single node that acts at one position
/// only changes block l at that position alone, so block l runs one position and the later positions take the
/// cached residual. Runs with the same start execute together, their rows stacked into one GEMM.
/// </summary>
internal sealed partial class CpuEngine<T>
{
    /// <summary>Rows (runs × positions) stacked into one batch of patched runs.</summary>
    private const int RowsPerBatch = 2048;

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
        int seqLen = base_.SeqLen, layers = _c.Layers, vocab = _c.VocabSize;

        var plans = new RunPlan[runs.Length];
        int planned = 0;
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
                values[i] = MetricOfLogits(targets, run.Example, base_.LastLogits.AsSpan(run.Example * vocab, vocab), reference);
                continue;
            }
            plans[planned++] = new RunPlan(i, plan.Layer, plan.Position, plan.OnePosition, run.Example);
        }
        Array.Sort(plans, 0, planned);

        int maxRuns = options.MaxRunsPerBatch > 0 ? options.MaxRunsPerBatch : int.MaxValue;
        var results = new double[runs.Length];
        int start = 0;
        var runArray = runs.ToArray();
        while (start < planned)
        {
            var first = plans[start];
            int s = seqLen - first.Position;
            int limit = Math.Min(maxRuns, Math.Max(1, RowsPerBatch / s));
            int end = start + 1;
            while (end < planned && end - start < limit && plans[end].SameStart(first)) end++;
            RunBatch(base_, source, runArray, plans.AsSpan(start, end - start), targets, reference, results);
            start = end;
        }
        for (int p = 0; p < planned; p++) values[plans[p].Index] = results[plans[p].Index];
    }

    /// <summary>Where a patched run starts; sorted so that runs sharing a start are adjacent.</summary>
    private readonly record struct RunPlan(int Index, int Layer, int Position, bool OnePosition, int Example) : IComparable<RunPlan>
    {
        public bool SameStart(RunPlan other) => Layer == other.Layer && Position == other.Position && OnePosition == other.OnePosition;

        public int CompareTo(RunPlan other)
        {
            int c = Layer.CompareTo(other.Layer);
            if (c == 0) c = Position.CompareTo(other.Position);
            if (c == 0) c = OnePosition.CompareTo(other.OnePosition);
            if (c == 0) c = Example.CompareTo(other.Example);
            return c == 0 ? Index.CompareTo(other.Index) : c;
        }
    }

    private void RunBatch(CpuRun<T> base_, CpuRun<T> source, PatchRun[] runs, ReadOnlySpan<RunPlan> plans,
        MetricTargets targets, ReferenceDistribution? reference, double[] results)
    {
        int seqLen = base_.SeqLen, d = _c.DModel, layers = _c.Layers;
        int start = plans[0].Layer, p = plans[0].Position, s = seqLen - p, count = plans.Length;
        bool one = plans[0].OnePosition;
        var examples = new int[count];
        var injector = new Injector(_c, source, layers, seqLen, p);
        for (int r = 0; r < count; r++)
        {
            examples[r] = plans[r].Example;
            foreach (var node in runs[plans[r].Index].Nodes.Span) injector.Add(r, examples[r], node);
        }

        int rows = count * s;
        var x = _ws.Get(ref _ws.X, rows * d);
        for (int r = 0; r < count; r++)
            base_.ResidPre[start].AsSpan((examples[r] * seqLen + p) * d, s * d).CopyTo(x.AsSpan(r * s * d, s * d));

        var buffers = new LayerBuffers(
            Normed: _ws.Get(ref _ws.Normed, rows * d), Mid: _ws.Get(ref _ws.Mid, rows * d),
            Out: _ws.Get(ref _ws.Out, rows * d),
            Q: _ws.Get(ref _ws.Q, rows * _c.QueryWidth), K: _ws.Get(ref _ws.K, rows * _c.KvWidth), V: _ws.Get(ref _ws.V, rows * _c.KvWidth),
            Z: _ws.Get(ref _ws.Z, rows * _c.QueryWidth), AttnOut: _ws.Get(ref _ws.AttnOut, rows * d),
            Up: _ws.Get(ref _ws.Up, rows * _c.DMlp), Gate: _c.GatedMlp ? _ws.Get(ref _ws.Gate, rows * _c.DMlp) : [],
            Act: _ws.Get(ref _ws.Act, rows * _c.DMlp), MlpOut: _ws.Get(ref _ws.MlpOut, rows * d), Probs: null);

        for (int l = start; l < layers; l++)
        {
            bool onePosition = one && l == start;
            bool last = l == layers - 1;
            var step = onePosition
                ? new Step(l, count, s, p, 1, 0, 1, examples, base_)
                : new Step(l, count, s, p, s, last ? s - 1 : 0, s, examples, base_);
            Layer(step, buffers, x, x, injector);
            if (onePosition && s > 1)
            {
                // Later positions of block l are unchanged: take the cached residual after the block.
                for (int r = 0; r < count; r++)
                    base_.ResidPre[l + 1].AsSpan((examples[r] * seqLen + p + 1) * d, (s - 1) * d).CopyTo(x.AsSpan((r * s + 1) * d, (s - 1) * d));
            }
            CheckFinite(x.AsSpan(0, rows * d), s * d, "patched forward", l, "the residual stream after the block (example = patched run of the batch)");
        }

        // The last position: final norm, then only the columns the metric reads.
        var lastRows = _ws.Get(ref _ws.GatherQ, count * d);
        for (int r = 0; r < count; r++) x.AsSpan((r * s + s - 1) * d, d).CopyTo(lastRows.AsSpan(r * d, d));
        var normed = buffers.Normed;
        Norm(lastRows, count, normed, Weights.FinalNormWeight, Weights.FinalNormBias);
        int vocab = _c.VocabSize, uo = Weights.Unembedding.Offset, bo = Weights.UnembeddingBias.Offset;
        bool two = targets.NeedsOnlyTwoColumns;
        var weights = _w;
        var indices = new int[count];
        for (int r = 0; r < count; r++) indices[r] = plans[r].Index;
        Parallel.For(0, count, _parallel, () => two ? [] : new T[vocab], (r, _, logits) =>
        {
            int e = examples[r];
            var h = normed.AsSpan(r * d, d);
            if (two)
            {
                double a = double.CreateTruncating(Logit(weights, h, uo, bo, targets.Answers[e], d));
                double w = double.CreateTruncating(Logit(weights, h, uo, bo, targets.Wrongs[e], d));
                results[indices[r]] = targets.Value(e, a, w, 0, 0);
            }
            else
            {
                for (int v = 0; v < vocab; v++) logits[v] = Logit(weights, h, uo, bo, v, d);
                results[indices[r]] = MetricOfLogits(targets, e, logits, reference);
            }
            return logits;
        }, _ => { });
    }

    /// <summary>
    /// The patches of one batch of runs, by layer and site: at each site of the block the recomputed value of every
    /// patched node (run r, its positions inside the rows being computed) is replaced by the source run's value.
    /// </summary>
    private sealed class Injector
    {
        private readonly ModelConfig _c;
        private readonly NodeSpace _space;
        private readonly CpuRun<T> _source;
        private readonly int _seqLen, _firstPosition;
        private readonly List<(int Run, int Example, Node Node)>[,] _sites;

        public Injector(ModelConfig c, CpuRun<T> source, int layers, int seqLen, int firstPosition)
        {
            _c = c;
            _space = new NodeSpace(c, seqLen);
            _source = source;
            _seqLen = seqLen;
            _firstPosition = firstPosition;
            _sites = new List<(int, int, Node)>[layers, 8];
        }

        public void Add(int run, int example, Node node) =>
            (_sites[node.Layer, (int)node.Type] ??= []).Add((run, example, node));

        /// <summary>Injects into <paramref name="buffer"/> [runs·rowsPerRun, width], whose row r·rowsPerRun + i holds
        /// local position <paramref name="firstLocal"/> + i for i &lt; <paramref name="count"/>.</summary>
        public void Apply(NodeType type, int layer, T[] buffer, int width, int rowsPerRun, int firstLocal, int count)
        {
            var list = _sites[layer, (int)type];
            if (list is null) return;
            var (source, sourceWidth) = _source.Site(type, layer, _c);
            int length = _space.Width(type);
            foreach (var (run, example, node) in list)
            {
                int offset = BackendChecks.FeatureOffset(_c, node);
                int from = node.IsAllPositions ? 0 : node.Position, to = node.IsAllPositions ? _seqLen : node.Position + 1;
                for (int t = Math.Max(from, _firstPosition + firstLocal); t < Math.Min(to, _firstPosition + firstLocal + count); t++)
                {
                    int i = t - _firstPosition - firstLocal;
                    source.AsSpan((example * _seqLen + t) * sourceWidth + offset, length)
                        .CopyTo(buffer.AsSpan((run * rowsPerRun + i) * width + offset, length));
                }
            }
        }
    }
}
