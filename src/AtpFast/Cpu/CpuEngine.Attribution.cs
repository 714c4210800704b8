using System.Numerics.Tensors;

namespace AtpFast.Cpu;

/// <summary>The attribution products: Δactivation·gradient per node and the QK fix, reduced per example and
/// accumulated over examples (|·| and signed) without materialising per-node tensors.</summary>
internal sealed partial class CpuEngine<T>
{
    /// <summary>Neurons scored together by one work item (vectorised across the neuron axis).</summary>
    private const int NeuronBlock = 256;

    public void AccumulateAttribution(AttributionRequest request, Span<double> sumAbs, Span<double> sumSigned)
    {
        ArgumentNullException.ThrowIfNull(request);
        var base_ = Own(request.BaseRun, nameof(request.BaseRun));
        var source = Own(request.SourceRun, nameof(request.SourceRun));
        var g = Own(request.Gradients, nameof(request.Gradients));
        var space = BackendChecks.Attribution(_c, request, g, sumAbs.Length, sumSigned.Length);
        EnsureRotary(base_.SeqLen);

        bool qk = request.QkFix && (request.Types & (NodeTypes.Query | NodeTypes.Key)) != 0;
        var items = new List<(NodeType Type, int Layer, int Index)>();
        for (int l = request.FromLayer; l <= request.ToLayer; l++)
        {
            if (request.LayerWeights[l] == 0) continue;
            for (int t = 0; t < 8; t++)
            {
                var type = (NodeType)t;
                if (((int)request.Types & (1 << t)) == 0 || (qk && type is NodeType.Query or NodeType.Key)) continue;
                int count = type == NodeType.Neuron ? (_c.DMlp + NeuronBlock - 1) / NeuronBlock : space.PerLayer(type);
                for (int i = 0; i < count; i++) items.Add((type, l, i));
            }
            if (qk)
            {
                for (int kvh = 0; kvh < _c.KvHeads; kvh++) items.Add((NodeType.Key, l, -1 - kvh)); // QK-fix item
            }
        }

        // This call's scores, added to the running sums at the end (scratch kept across the many calls of a sweep).
        if (_scoreAbs.Length != space.Count) (_scoreAbs, _scoreSigned) = (new double[space.Count], new double[space.Count]);
        else { Array.Clear(_scoreAbs); Array.Clear(_scoreSigned); }
        var (abs, signed) = (_scoreAbs, _scoreSigned);
        var positions = request.Positions;
        var tables = qk ? QkTablesFor(base_, source) : null;
        Parallel.ForEach(items, _parallel, item =>
        {
            double w = request.LayerWeights[item.Layer];
            if (item.Index < 0)
                QkItem(base_, g, tables!, space, request.Types, positions, item.Layer, -1 - item.Index, w, abs, signed);
            else
                LinearItem(base_, source, g, space, positions, item.Type, item.Layer, item.Index, w, abs, signed);
        });
        for (int i = 0; i < abs.Length; i++)
        {
            sumAbs[i] += abs[i];
            sumSigned[i] += signed[i];
        }
    }

    /// <summary>Adds w·|s| and w·s of one example's per-position and all-positions scores.</summary>
    private static void AddScores(int firstId, int seqLen, PositionMode positions, ReadOnlySpan<double> perPosition, double w,
        double[] abs, double[] signed)
    {
        double all = 0;
        for (int t = 0; t < seqLen; t++)
        {
            double s = perPosition[t];
            all += s;
            if (positions != PositionMode.AllPositions)
            {
                abs[firstId + t] += w * Math.Abs(s);
                signed[firstId + t] += w * s;
            }
        }
        if (positions != PositionMode.PerPosition)
        {
            abs[firstId + seqLen] += w * Math.Abs(all);
            signed[firstId + seqLen] += w * all;
        }
    }

    /// <summary>Plain AtP, (n_source − n_base)·∂L/∂n, for one head / key-value head / block of neurons / d-wide node.</summary>
    private void LinearItem(CpuRun<T> base_, CpuRun<T> source, CpuGradients<T> g, NodeSpace space, PositionMode positions,
        NodeType type, int layer, int index, double w, double[] abs, double[] signed)
    {
        int seqLen = base_.SeqLen;
        var (baseArr, rowWidth) = base_.Site(type, layer, _c);
        var srcArr = source.Site(type, layer, _c).Array;
        var gradArr = g.Site(type, layer);
        bool neurons = type == NodeType.Neuron;
        int first = neurons ? index * NeuronBlock : index;
        int count = neurons ? Math.Min(NeuronBlock, _c.DMlp - first) : 1;
        int width = neurons ? 1 : space.Width(type);
        int offset = type <= NodeType.HeadOutput ? index * _c.HeadDim : neurons ? first : 0;
        var diff = new T[neurons ? count : width];
        var perPosition = new double[count * seqLen]; // [node, position]
        for (int e = 0; e < base_.Batch; e++)
        {
            for (int t = 0; t < seqLen; t++)
            {
                int at = (e * seqLen + t) * rowWidth + offset;
                int len = neurons ? count : width;
                TensorPrimitives.Subtract(srcArr.AsSpan(at, len), baseArr.AsSpan(at, len), diff);
                if (neurons)
                {
                    TensorPrimitives.Multiply(diff, gradArr.AsSpan(at, len), diff);
                    for (int n = 0; n < count; n++) perPosition[n * seqLen + t] = double.CreateTruncating(diff[n]);
                }
                else
                {
                    perPosition[t] = double.CreateTruncating(Simd.Dot<T>(diff, gradArr.AsSpan(at, len)));
                }
            }
            for (int n = 0; n < count; n++)
            {
                int id = space.Id(new Node(type, layer, neurons ? first + n : index, 0));
                AddScores(id, seqLen, positions, perPosition.AsSpan(n * seqLen, seqLen), w, abs, signed);
            }
        }
    }

    /// <summary>The QK fix for one key/value head: the query nodes of its query heads (exact row recomputation) and
    /// its key nodes (the closed form; all keys at once by row recomputation for <c>@*</c>), from tables that hold
    /// everything not depending on g (built once per pair of runs), applied to this pass's ∂L/∂A.</summary>
    private void QkItem(CpuRun<T> base_, CpuGradients<T> g, QkTables tables, NodeSpace space, NodeTypes types,
        PositionMode positions, int layer, int kvh, double w, double[] abs, double[] signed)
    {
        int seqLen = base_.SeqLen, heads = _c.Heads;
        bool wantQ = (types & NodeTypes.Query) != 0, wantK = (types & NodeTypes.Key) != 0;
        bool keyAll = wantK && positions != PositionMode.PerPosition;
        bool keyEach = wantK && positions != PositionMode.AllPositions;
        tables.Ensure(this, layer, kvh, wantQ, keyEach, keyAll);
        T[] dProbs = g.DProbs[layer];
        var grad = new double[seqLen];
        var queryScores = new double[seqLen];
        var keyScores = new double[seqLen];
        double[] queryDelta = tables.QueryDelta[layer], ratio = tables.KeyRatio[layer], probability = tables.KeyProbability[layer];
        double[] allDelta = tables.KeyAllDelta[layer];
        int[] top = tables.Top[layer];
        for (int e = 0; e < base_.Batch; e++)
        {
            Array.Clear(keyScores);
            double keyAllScore = 0;
            for (int h = kvh * _c.GroupSize; h < (kvh + 1) * _c.GroupSize; h++)
            {
                for (int t = 0; t < seqLen; t++)
                {
                    int n = t + 1, row = (e * heads + h) * seqLen + t, rowStart = row * seqLen;
                    for (int s = 0; s < n; s++) grad[s] = double.CreateTruncating(dProbs[rowStart + s]);
                    if (wantQ) queryScores[t] = Dot(queryDelta.AsSpan(rowStart, n), grad.AsSpan(0, n));
                    if (keyEach)
                        QkFix.ApplyRow(ratio.AsSpan(rowStart, n), probability.AsSpan(rowStart, n), top[row], grad.AsSpan(0, n), keyScores);
                    if (keyAll) keyAllScore += Dot(allDelta.AsSpan(rowStart, n), grad.AsSpan(0, n));
                }
                if (wantQ)
                    AddScores(space.Id(new Node(NodeType.Query, layer, h, 0)), seqLen, positions, queryScores, w, abs, signed);
            }
            if (keyEach) AddScores(space.Id(new Node(NodeType.Key, layer, kvh, 0)), seqLen, PositionMode.PerPosition, keyScores, w, abs, signed);
            if (keyAll)
            {
                int id = space.Id(new Node(NodeType.Key, layer, kvh, Node.AllPositions));
                abs[id] += w * Math.Abs(keyAllScore);
                signed[id] += w * keyAllScore;
            }
        }
    }

    private static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }

    /// <summary>The QK fix's g-independent tables for one (base, source) pair of runs, [layer][batch, H, T, T]:
    /// A'_ts − A_ts with the source's query (queries), the closed form's ratio and accurate probabilities with the
    /// row maximum per row (keys), and A'_ts − A_ts with every key from the source (<c>k@*</c>). Filled per
    /// (layer, key/value head) on first use; a write to either run (<see cref="CpuRun{T}.Version"/>) invalidates them.</summary>
    private sealed class QkTables
    {
        private readonly bool[,] _query, _key, _keyAll;

        public QkTables(CpuRun<T> base_, CpuRun<T> source, ModelConfig c)
        {
            Base = base_;
            Source = source;
            BaseVersion = base_.Version;
            SourceVersion = source.Version;
            int size = base_.Batch * c.Heads * base_.SeqLen * base_.SeqLen;
            QueryDelta = CacheArrays.Alloc<double>(c.Layers, size);
            KeyRatio = CacheArrays.Alloc<double>(c.Layers, size);
            KeyProbability = CacheArrays.Alloc<double>(c.Layers, size);
            KeyAllDelta = CacheArrays.Alloc<double>(c.Layers, size);
            Top = CacheArrays.Alloc<int>(c.Layers, base_.Batch * c.Heads * base_.SeqLen);
            _query = new bool[c.Layers, c.KvHeads];
            _key = new bool[c.Layers, c.KvHeads];
            _keyAll = new bool[c.Layers, c.KvHeads];
        }

        public CpuRun<T> Base { get; }
        public CpuRun<T> Source { get; }
        public int BaseVersion { get; }
        public int SourceVersion { get; }
        public double[][] QueryDelta { get; }
        public double[][] KeyRatio { get; }
        public double[][] KeyProbability { get; }
        public double[][] KeyAllDelta { get; }
        public int[][] Top { get; }

        public bool Matches(CpuRun<T> base_, CpuRun<T> source) => ReferenceEquals(base_, Base) && ReferenceEquals(source, Source) &&
            base_.Version == BaseVersion && source.Version == SourceVersion;

        /// <summary>Fills the tables of (layer, kvh) that are asked for and missing. Items of different (layer, kvh)
        /// write disjoint parts, so they may run in parallel.</summary>
        public void Ensure(CpuEngine<T> engine, int layer, int kvh, bool query, bool key, bool keyAll)
        {
            bool q = query && !_query[layer, kvh], k = key && !_key[layer, kvh], all = keyAll && !_keyAll[layer, kvh];
            if (!(q || k || all)) return;
            engine.BuildQkTables(this, layer, kvh, q, k, all);
            _query[layer, kvh] |= q;
            _key[layer, kvh] |= k;
            _keyAll[layer, kvh] |= all;
        }
    }

    private QkTables? _qkTables;
    private double[] _scoreAbs = [], _scoreSigned = [];

    private QkTables QkTablesFor(CpuRun<T> base_, CpuRun<T> source)
    {
        if (_qkTables is { } cached && cached.Matches(base_, source) && !base_.Disposed && !source.Disposed) return cached;
        _qkTables = new QkTables(base_, source, _c);
        return _qkTables;
    }

    /// <summary>Recomputes the rows of (layer, kvh)'s query heads with the same code as the forward: query rows with the
    /// source query, the closed form's g-independent part from the base scores and the source keys' score changes,
    /// and rows with every key from the source.</summary>
    private void BuildQkTables(QkTables tables, int layer, int kvh, bool query, bool key, bool keyAll)
    {
        CpuRun<T> base_ = tables.Base, source = tables.Source;
        int seqLen = base_.SeqLen, hd = _c.HeadDim, heads = _c.Heads, qWidth = _c.QueryWidth, kvWidth = _c.KvWidth;
        T[] probs = base_.Probs[layer];
        var row = new T[seqLen];
        var scores = new double[seqLen];
        var delta = new double[seqLen];
        var dk = new T[seqLen * hd];
        for (int e = 0; e < base_.Batch; e++)
        {
            int kvBase = e * seqLen * kvWidth;
            var baseKeys = new KeyView(base_.K[layer], base_.V[layer], kvBase, seqLen, base_.K[layer], base_.V[layer], kvBase, kvWidth, kvh * hd, hd);
            var sourceKeys = new KeyView(source.K[layer], source.V[layer], kvBase, seqLen, source.K[layer], source.V[layer], kvBase, kvWidth, kvh * hd, hd);
            for (int s = 0; s < seqLen && key; s++)
                TensorPrimitives.Subtract(sourceKeys.Key(s), baseKeys.Key(s), dk.AsSpan(s * hd, hd));
            for (int h = kvh * _c.GroupSize; h < (kvh + 1) * _c.GroupSize; h++)
            {
                for (int t = 0; t < seqLen; t++)
                {
                    int n = t + 1, rowIndex = (e * heads + h) * seqLen + t, rowStart = rowIndex * seqLen;
                    var a = probs.AsSpan(rowStart, n);
                    var qBase = base_.Q[layer].AsSpan((e * seqLen + t) * qWidth + h * hd, hd);
                    if (query)
                    {
                        var qSource = source.Q[layer].AsSpan((e * seqLen + t) * qWidth + h * hd, hd);
                        RowChange(qSource, baseKeys, a, row.AsSpan(0, n), tables.QueryDelta[layer].AsSpan(rowStart, n));
                    }
                    if (key)
                    {
                        for (int s = 0; s < n; s++)
                        {
                            scores[s] = double.CreateTruncating(Simd.Dot<T>(qBase, baseKeys.Key(s)) * _scale);
                            delta[s] = double.CreateTruncating(Simd.Dot<T>(qBase, dk.AsSpan(s * hd, hd)) * _scale);
                        }
                        tables.Top[layer][rowIndex] = QkFix.PrepareRow(scores.AsSpan(0, n), delta.AsSpan(0, n),
                            tables.KeyRatio[layer].AsSpan(rowStart, n), tables.KeyProbability[layer].AsSpan(rowStart, n));
                    }
                    if (keyAll) RowChange(qBase, sourceKeys, a, row.AsSpan(0, n), tables.KeyAllDelta[layer].AsSpan(rowStart, n));
                }
            }
        }
    }

    /// <summary>change[s] = A'_s − A_s where A' = softmax(q·K/√d) recomputed with the given query and keys (the same
    /// code as the forward's row, so an unchanged row gives exactly 0).</summary>
    private void RowChange(ReadOnlySpan<T> q, in KeyView keys, ReadOnlySpan<T> a, Span<T> row, Span<double> change)
    {
        Scores(q, keys, row);
        Softmax(row);
        for (int s = 0; s < row.Length; s++) change[s] = double.CreateTruncating(row[s]) - double.CreateTruncating(a[s]);
    }
}
