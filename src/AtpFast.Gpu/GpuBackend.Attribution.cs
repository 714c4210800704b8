using AtpFast.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace AtpFast.Gpu;

/// <summary>The attribution products on the device: per node type and layer one fused product kernel and one reduction
/// over the batch into per-node sums; the QK fix from tables built once per pair of runs. Only the per-node sums come
/// back to the host.</summary>
public sealed partial class GpuBackend
{
    private QkTables? _qkTables;

    /// <inheritdoc/>
    public void AccumulateAttribution(AttributionRequest request, Span<double> sumAbs, Span<double> sumSigned)
    {
        ArgumentNullException.ThrowIfNull(request);
        var base_ = Own(request.BaseRun, nameof(request.BaseRun));
        var source = Own(request.SourceRun, nameof(request.SourceRun));
        var g = Own(request.Gradients, nameof(request.Gradients));
        var space = BackendChecks.Attribution(_c, request, g, sumAbs.Length, sumSigned.Length);
        int batch = base_.Batch, seqLen = base_.SeqLen;
        bool perPosition = request.Positions != PositionMode.AllPositions, allPositions = request.Positions != PositionMode.PerPosition;
        bool qk = request.QkFix && (request.Types & (NodeTypes.Query | NodeTypes.Key)) != 0;
        bool wantQ = (request.Types & NodeTypes.Query) != 0, wantK = (request.Types & NodeTypes.Key) != 0;

        var abs = _ws.Doubles("sum |score|", space.Count);
        var signed = _ws.Doubles("sum score", space.Count);
        abs.MemSetToZero();
        signed.MemSetToZero();
        QkTables? tables = null;
        if (qk)
        {
            tables = QkTablesFor(base_, source);
            tables.Ensure(this, wantQ, wantK && perPosition, wantK && allPositions);
        }
        for (int l = request.FromLayer; l <= request.ToLayer; l++)
        {
            double w = request.LayerWeights[l];
            if (w == 0) continue;
            for (int t = 0; t < 8; t++)
            {
                var type = (NodeType)t;
                if (((int)request.Types & (1 << t)) == 0 || (qk && type is NodeType.Query or NodeType.Key)) continue;
                var (baseArray, rowWidth) = base_.Site(type, l);
                int count = space.PerLayer(type), width = space.Width(type);
                var scores = _ws.Doubles("scores", (long)batch * count * seqLen);
                _k.Products(batch * count * seqLen, baseArray, source.Site(type, l).Array, g.Site(type, l), scores, rowWidth, width, count, seqLen);
                AccumulateScores(scores, _ws.EmptyDoubles, abs, signed, batch, count, seqLen, space.Id(new Node(type, l, 0, 0)), w,
                    perPosition, allPositions);
            }
            if (qk) ApplyQkFix(tables!, g, space, l, w, wantQ, wantK, perPosition, allPositions, abs, signed);
        }
        var hostAbs = new double[space.Count];
        var hostSigned = new double[space.Count];
        abs.CopyToCPU(hostAbs);
        signed.CopyToCPU(hostSigned);
        for (int i = 0; i < hostAbs.Length; i++)
        {
            sumAbs[i] += hostAbs[i];
            sumSigned[i] += hostSigned[i];
        }
    }

    private void ApplyQkFix(QkTables tables, GpuGradients g, NodeSpace space, int layer, double w, bool wantQ, bool wantK,
        bool perPosition, bool allPositions, ArrayView<double> abs, ArrayView<double> signed)
    {
        int batch = g.Batch, seqLen = g.SeqLen, heads = _c.Heads, kvHeads = _c.KvHeads;
        var shape = tables.Shape(_c, wantQ, wantK && perPosition, wantK && allPositions);
        var queryScores = _ws.Doubles("qk query scores", (long)batch * heads * seqLen);
        var topMinusMean = _ws.Doubles("qk row means", (long)batch * heads * seqLen);
        var allRows = _ws.Doubles("qk all-key rows", (long)batch * heads * seqLen);
        var keyScores = _ws.Doubles("qk key scores", (long)batch * kvHeads * seqLen);
        var allKeys = _ws.Doubles("qk all-key scores", (long)batch * kvHeads);
        _k.QkApplyRows(batch * heads * seqLen, g.DProbs(layer), tables.QueryDelta(layer), tables.Probability(layer), tables.Top(layer),
            tables.AllDelta(layer), queryScores, topMinusMean, allRows, shape);
        if (wantQ)
            AccumulateScores(queryScores, _ws.EmptyDoubles, abs, signed, batch, heads, seqLen, space.Id(new Node(NodeType.Query, layer, 0, 0)),
                w, perPosition, allPositions);
        if (wantK)
        {
            _k.QkApplyKeys(batch * kvHeads * seqLen, g.DProbs(layer), tables.Ratio(layer), tables.Top(layer), topMinusMean, allRows, keyScores,
                allKeys, shape);
            AccumulateScores(keyScores, allPositions ? allKeys : _ws.EmptyDoubles, abs, signed, batch, kvHeads, seqLen,
                space.Id(new Node(NodeType.Key, layer, 0, 0)), w, perPosition, allPositions);
        }
    }

    /// <summary>Adds w·Σ_e |s| and w·Σ_e s of <paramref name="count"/> nodes' scores into their per-position and @* ids:
    /// one thread per (node, position) and one per node's @* id (<see cref="ScoreAccumulateKernel"/>).</summary>
    private void AccumulateScores(ArrayView<double> scores, ArrayView<double> allScores, ArrayView<double> abs, ArrayView<double> signed,
        int batch, int count, int seqLen, int firstId, double w, bool perPosition, bool allPositions) =>
        _k.ScoreAccumulate(count * (seqLen + 1), scores, allScores, abs, signed, batch, count, seqLen, firstId, w, perPosition, allPositions);

    private QkTables QkTablesFor(GpuRun base_, GpuRun source)
    {
        if (_qkTables is { } cached && cached.Matches(base_, source)) return cached;
        _qkTables?.Dispose();
        _qkTables = new QkTables(this, base_, source);
        return _qkTables;
    }

    /// <summary>Uploads segment offsets and copies equal-length segments from <paramref name="source"/> to <paramref name="destination"/>.</summary>
    internal void CopySegments(ArrayView<float> source, ArrayView<float> destination, int[] from, int[] to, int length)
    {
        if (from.Length == 0) return;
        var fromView = _ws.Ints("segments from", from.Length);
        var toView = _ws.Ints("segments to", to.Length);
        fromView.CopyFromCPU(from);
        toView.CopyFromCPU(to);
        _k.SegmentCopy(from.Length * length, source, destination, fromView, toView, length);
    }

    /// <summary>The QK fix's g-independent tables for one (base, source) pair of runs, [layer][batch, H, T, T] in double,
    /// built per part on first use; a write to either run invalidates them.</summary>
    private sealed class QkTables : IDisposable
    {
        private readonly GpuBackend _owner;
        private readonly MemoryBuffer1D<double, Stride1D.Dense> _tables;
        private readonly MemoryBuffer1D<int, Stride1D.Dense> _top;
        private readonly long _size;
        private readonly int _baseVersion, _sourceVersion;
        private bool _query, _key, _allKeys;

        public QkTables(GpuBackend owner, GpuRun base_, GpuRun source)
        {
            _owner = owner;
            Base = base_;
            Source = source;
            _baseVersion = base_.Version;
            _sourceVersion = source.Version;
            var c = owner._c;
            _size = (long)base_.Batch * c.Heads * base_.SeqLen * base_.SeqLen;
            _tables = owner.Allocate<double>(4 * _size * c.Layers, "QK-fix tables");
            _top = owner.Allocate<int>((long)base_.Batch * c.Heads * base_.SeqLen * c.Layers, "QK-fix tables");
        }

        public GpuRun Base { get; }
        public GpuRun Source { get; }

        public bool Matches(GpuRun base_, GpuRun source) => ReferenceEquals(base_, Base) && ReferenceEquals(source, Source) &&
            !base_.Disposed && !source.Disposed && base_.Version == _baseVersion && source.Version == _sourceVersion;

        private ArrayView<double> Table(int which, int layer) => _tables.View.SubView((layer * 4L + which) * _size, _size);

        public ArrayView<double> QueryDelta(int layer) => Table(0, layer);
        public ArrayView<double> Ratio(int layer) => Table(1, layer);
        public ArrayView<double> Probability(int layer) => Table(2, layer);
        public ArrayView<double> AllDelta(int layer) => Table(3, layer);
        public ArrayView<int> Top(int layer) => _top.View.SubView(layer * (_size / Base.SeqLen), _size / Base.SeqLen);

        public QkShape Shape(ModelConfig c, bool query, bool key, bool allKeys) => new(Base.Batch, Base.SeqLen, c.Heads, c.GroupSize, c.HeadDim,
            c.QueryWidth, c.KvWidth, 1f / MathF.Sqrt(c.HeadDim), query, key, allKeys);

        /// <summary>Builds the parts asked for and not yet built, for every layer.</summary>
        public void Ensure(GpuBackend b, bool query, bool key, bool allKeys)
        {
            bool q = query && !_query, k = key && !_key, all = allKeys && !_allKeys;
            if (!(q || k || all)) return;
            var c = b._c;
            var shape = Shape(c, q, k, all);
            int rows = Base.Batch * c.Heads * Base.SeqLen;
            var scratch = b._ws.Floats("qk rows", _size);
            for (int l = 0; l < c.Layers; l++)
            {
                b._k.QkBuild(rows, Base.Q(l), Base.K(l), Source.Q(l), Source.K(l), Base.Probs(l), scratch, QueryDelta(l), Ratio(l),
                    Probability(l), Top(l), AllDelta(l), shape);
            }
            _query |= q;
            _key |= k;
            _allKeys |= all;
        }

        public void Dispose()
        {
            _tables.Dispose();
            _top.Dispose();
        }
    }
}
