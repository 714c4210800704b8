using System.Numerics;

namespace AtpFast.Cpu;

/// <summary>What every CPU cache tells its engine: who made it and whether it was disposed.</summary>
internal interface ICpuCache
{
    /// <summary>The engine that made it.</summary>
    object Owner { get; }

    /// <summary>True once disposed (its arrays went back to the pool).</summary>
    bool Disposed { get; }
}

/// <summary>
/// A cached forward pass on the CPU. Per layer, row-major with row = example·T + position:
/// <c>ResidPre[l]</c> [rows, d] (index L = after the last block), <c>Q[l]</c> [rows, H·HeadDim] and <c>K[l]</c>,
/// <c>V[l]</c> [rows, KvHeads·HeadDim] after rotary, <c>Probs[l]</c> [batch, H, T, T] (zero above the diagonal),
/// <c>Z[l]</c> [rows, H·HeadDim], <c>AttnOut[l]</c>, <c>MlpOut[l]</c> [rows, d], <c>Up[l]</c>, <c>Gate[l]</c> (SwiGLU)
/// pre-activations and <c>Act[l]</c> post-activations [rows, DMlp]; <c>LastLogits</c> [batch, VocabSize] at the
/// last position.
/// </summary>
internal sealed class CpuRun<T> : IRunCache, ICpuCache where T : unmanaged, INumber<T>
{
    public CpuRun(object owner, BufferPool<T> pool, ModelConfig c, int batch, int seqLen)
    {
        Owner = owner;
        _pool = pool;
        Batch = batch;
        SeqLen = seqLen;
        int rows = checked(batch * seqLen);
        long probs = (long)batch * c.Heads * seqLen * seqLen;
        if (probs > Array.MaxLength || (long)rows * c.DMlp > Array.MaxLength || (long)batch * c.VocabSize > Array.MaxLength)
            throw new InvalidModelInputException($"a batch of {batch} × {seqLen} tokens is too large for one cached pass; use fewer pairs per batch");
        Tokens = new int[rows];
        ResidPre = pool.Rent(c.Layers + 1, rows * c.DModel);
        Q = pool.Rent(c.Layers, rows * c.QueryWidth);
        K = pool.Rent(c.Layers, rows * c.KvWidth);
        V = pool.Rent(c.Layers, rows * c.KvWidth);
        Probs = pool.Rent(c.Layers, (int)probs);
        Z = pool.Rent(c.Layers, rows * c.QueryWidth);
        AttnOut = pool.Rent(c.Layers, rows * c.DModel);
        Up = pool.Rent(c.Layers, rows * c.DMlp);
        Gate = pool.Rent(c.Layers, c.GatedMlp ? rows * c.DMlp : 0);
        Act = pool.Rent(c.Layers, rows * c.DMlp);
        MlpOut = pool.Rent(c.Layers, rows * c.DModel);
        LastLogits = pool.Rent(1, batch * c.VocabSize)[0];
    }

    private CpuRun(CpuRun<T> other)
    {
        Owner = other.Owner;
        _pool = other._pool;
        Batch = other.Batch;
        SeqLen = other.SeqLen;
        Tokens = (int[])other.Tokens.Clone();
        ResidPre = _pool.Copy(other.ResidPre);
        Q = _pool.Copy(other.Q);
        K = _pool.Copy(other.K);
        V = _pool.Copy(other.V);
        Probs = _pool.Copy(other.Probs);
        Z = _pool.Copy(other.Z);
        AttnOut = _pool.Copy(other.AttnOut);
        Up = _pool.Copy(other.Up);
        Gate = _pool.Copy(other.Gate);
        Act = _pool.Copy(other.Act);
        MlpOut = _pool.Copy(other.MlpOut);
        LastLogits = _pool.Copy([other.LastLogits])[0];
    }

    private readonly BufferPool<T> _pool;

    public object Owner { get; }
    public int Batch { get; }
    public int SeqLen { get; }
    public bool Disposed { get; private set; }

    /// <summary>Incremented by every write of a node value (derived tables keyed on the run check it).</summary>
    public int Version { get; set; }

    public int[] Tokens { get; }
    public T[][] ResidPre { get; }
    public T[][] Q { get; }
    public T[][] K { get; }
    public T[][] V { get; }
    public T[][] Probs { get; }
    public T[][] Z { get; }
    public T[][] AttnOut { get; }
    public T[][] Up { get; }
    public T[][] Gate { get; }
    public T[][] Act { get; }
    public T[][] MlpOut { get; }
    public T[] LastLogits { get; }

    /// <summary>The last-position distribution when the run is a KL reference (computed on first use).</summary>
    public ReferenceDistribution? Distribution { get; set; }

    public CpuRun<T> Clone() => new(this);

    /// <summary>The array holding nodes of <paramref name="type"/> in <paramref name="layer"/> and its row width.</summary>
    public (T[] Array, int Width) Site(NodeType type, int layer, ModelConfig c) => type switch
    {
        NodeType.Query => (Q[layer], c.QueryWidth),
        NodeType.Key => (K[layer], c.KvWidth),
        NodeType.Value => (V[layer], c.KvWidth),
        NodeType.HeadOutput => (Z[layer], c.QueryWidth),
        NodeType.Neuron => (Act[layer], c.DMlp),
        NodeType.ResidPre => (ResidPre[layer], c.DModel),
        NodeType.AttnOut => (AttnOut[layer], c.DModel),
        NodeType.MlpOut => (MlpOut[layer], c.DModel),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Returns the arrays to the pool; the cache can no longer be used.</summary>
    public void Dispose()
    {
        if (Disposed) return;
        Disposed = true;
        _pool.Return(ResidPre, Q, K, V, Probs, Z, AttnOut, Up, Gate, Act, MlpOut, [LastLogits]);
    }
}

/// <summary>The KL reference run's last-position distributions, log p and p [batch, vocab], computed once per run:
/// every patched run of an example compares against the same one.</summary>
internal sealed class ReferenceDistribution(double[] logProbs, double[] probs, int vocab)
{
    public ReadOnlySpan<double> LogProbs(int example) => logProbs.AsSpan(example * vocab, vocab);
    public ReadOnlySpan<double> Probs(int example) => probs.AsSpan(example * vocab, vocab);
}

/// <summary>
/// Activation gradients on the CPU, laid out like <see cref="CpuRun{T}"/>: <c>DResidPre[l]</c> (index L = the
/// residual after the last block), <c>DQ</c>, <c>DK</c> (after rotary), <c>DV</c>, <c>DZ</c>, <c>DAttnOut</c>,
/// <c>DAct</c> (neurons), <c>DMlpOut</c>, and <c>DProbs</c> = ∂L/∂A [batch, H, T, T].
/// </summary>
internal sealed class CpuGradients<T> : IGradientCache, ICpuCache where T : unmanaged, INumber<T>
{
    public CpuGradients(object owner, BufferPool<T> pool, ModelConfig c, int batch, int seqLen)
    {
        Owner = owner;
        _pool = pool;
        Batch = batch;
        SeqLen = seqLen;
        int rows = batch * seqLen;
        DResidPre = pool.Rent(c.Layers + 1, rows * c.DModel);
        DQ = pool.Rent(c.Layers, rows * c.QueryWidth);
        DK = pool.Rent(c.Layers, rows * c.KvWidth);
        DV = pool.Rent(c.Layers, rows * c.KvWidth);
        DZ = pool.Rent(c.Layers, rows * c.QueryWidth);
        DAttnOut = pool.Rent(c.Layers, rows * c.DModel);
        DAct = pool.Rent(c.Layers, rows * c.DMlp);
        DMlpOut = pool.Rent(c.Layers, rows * c.DModel);
        DProbs = pool.Rent(c.Layers, batch * c.Heads * seqLen * seqLen);
    }

    private readonly BufferPool<T> _pool;

    public object Owner { get; }
    public int Batch { get; }
    public int SeqLen { get; }
    public int ValidThroughLayer { get; set; } = -1;
    public bool Disposed { get; private set; }
    public T[][] DResidPre { get; }
    public T[][] DQ { get; }
    public T[][] DK { get; }
    public T[][] DV { get; }
    public T[][] DZ { get; }
    public T[][] DAttnOut { get; }
    public T[][] DAct { get; }
    public T[][] DMlpOut { get; }
    public T[][] DProbs { get; }

    /// <summary>The gradient array of nodes of <paramref name="type"/> in <paramref name="layer"/>.</summary>
    public T[] Site(NodeType type, int layer) => type switch
    {
        NodeType.Query => DQ[layer],
        NodeType.Key => DK[layer],
        NodeType.Value => DV[layer],
        NodeType.HeadOutput => DZ[layer],
        NodeType.Neuron => DAct[layer],
        NodeType.ResidPre => DResidPre[layer],
        NodeType.AttnOut => DAttnOut[layer],
        NodeType.MlpOut => DMlpOut[layer],
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Zeroes the node gradients of <paramref name="layer"/> (not its resid_pre).</summary>
    public void ClearLayer(int layer)
    {
        Array.Clear(DQ[layer]);
        Array.Clear(DK[layer]);
        Array.Clear(DV[layer]);
        Array.Clear(DZ[layer]);
        Array.Clear(DAttnOut[layer]);
        Array.Clear(DAct[layer]);
        Array.Clear(DMlpOut[layer]);
        Array.Clear(DProbs[layer]);
    }

    /// <summary>Returns the arrays to the pool; the cache can no longer be used.</summary>
    public void Dispose()
    {
        if (Disposed) return;
        Disposed = true;
        _pool.Return(DResidPre, DQ, DK, DV, DZ, DAttnOut, DAct, DMlpOut, DProbs);
    }
}

/// <summary>
/// Arrays of disposed caches kept for the next cache of the same shape: a pass set allocates tens of megabytes of
/// large-object-heap arrays, and reallocating (and zeroing) them per batch made the garbage collector the bottleneck.
/// Reused arrays are not cleared: every pass writes what it later reads (the attention rows are read only up to the
/// diagonal, which every pass writes). At most <see cref="MaxPooledElements"/> elements are kept.
/// </summary>
internal sealed class BufferPool<T>
{
    private const long MaxPooledElements = 256L << 20;
    private readonly Dictionary<int, Stack<T[]>> _free = [];
    private readonly Lock _lock = new();
    private long _pooled;

    /// <summary><paramref name="count"/> arrays of <paramref name="length"/> elements, reused when available.</summary>
    public T[][] Rent(int count, int length)
    {
        var arrays = new T[count][];
        lock (_lock)
        {
            for (int i = 0; i < count; i++)
            {
                if (_free.TryGetValue(length, out var stack) && stack.Count > 0)
                {
                    arrays[i] = stack.Pop();
                    _pooled -= length;
                }
                else
                {
                    arrays[i] = new T[length];
                }
            }
        }
        return arrays;
    }

    /// <summary>Pooled copies of <paramref name="arrays"/>.</summary>
    public T[][] Copy(T[][] arrays)
    {
        var copies = new T[arrays.Length][];
        for (int i = 0; i < arrays.Length; i++)
        {
            copies[i] = Rent(1, arrays[i].Length)[0];
            arrays[i].CopyTo(copies[i], 0);
        }
        return copies;
    }

    public void Return(params T[][][] groups)
    {
        lock (_lock)
        {
            foreach (var group in groups)
            {
                foreach (var array in group)
                {
                    if (array.Length == 0 || _pooled + array.Length > MaxPooledElements) continue;
                    if (!_free.TryGetValue(array.Length, out var stack)) _free[array.Length] = stack = new Stack<T[]>();
                    stack.Push(array);
                    _pooled += array.Length;
                }
            }
        }
    }

    public void Clear()
    {
        lock (_lock)
        {
            _free.Clear();
            _pooled = 0;
        }
    }
}

/// <summary>Per-layer array helpers.</summary>
internal static class CacheArrays
{
    /// <summary><paramref name="count"/> zeroed arrays of <paramref name="length"/> elements.</summary>
    public static TElement[][] Alloc<TElement>(int count, int length)
    {
        var arrays = new TElement[count][];
        for (int i = 0; i < count; i++) arrays[i] = new TElement[length];
        return arrays;
    }
}
