using System.Numerics;

namespace AtpFast.Cpu;

/// <summary>
/// A cached forward pass on the CPU. Per layer, row-major with row = example·T + position:
/// <c>ResidPre[l]</c> [rows, d] (index L = after the last block), <c>Q[l]</c> [rows, H·HeadDim] and <c>K[l]</c>,
/// <c>V[l]</c> [rows, KvHeads·HeadDim] after rotary, <c>Probs[l]</c> [batch, H, T, T] (zero above the diagonal),
/// <c>Z[l]</c> [rows, H·HeadDim], <c>AttnOut[l]</c>, <c>MlpOut[l]</c> [rows, d], <c>Up[l]</c>, <c>Gate[l]</c> (SwiGLU)
/// pre-activations and <c>Act[l]</c> post-activations [rows, DMlp]; <c>LastLogits</c> [batch, VocabSize] at the
/// last position.
/// </summary>
internal sealed class CpuRun<T> : IRunCache where T : unmanaged, INumber<T>
{
    public CpuRun(object owner, ModelConfig c, int batch, int seqLen)
    {
        Owner = owner;
        Batch = batch;
        SeqLen = seqLen;
        int rows = checked(batch * seqLen);
        long probs = (long)batch * c.Heads * seqLen * seqLen;
        if (probs > Array.MaxLength || (long)rows * c.DMlp > Array.MaxLength || (long)batch * c.VocabSize > Array.MaxLength)
            throw new InvalidModelInputException($"a batch of {batch} × {seqLen} tokens is too large for one cached pass; use fewer pairs per batch");
        Tokens = new int[rows];
        ResidPre = CacheArrays.Alloc<T>(c.Layers + 1, rows * c.DModel);
        Q = CacheArrays.Alloc<T>(c.Layers, rows * c.QueryWidth);
        K = CacheArrays.Alloc<T>(c.Layers, rows * c.KvWidth);
        V = CacheArrays.Alloc<T>(c.Layers, rows * c.KvWidth);
        Probs = CacheArrays.Alloc<T>(c.Layers, (int)probs);
        Z = CacheArrays.Alloc<T>(c.Layers, rows * c.QueryWidth);
        AttnOut = CacheArrays.Alloc<T>(c.Layers, rows * c.DModel);
        Up = CacheArrays.Alloc<T>(c.Layers, rows * c.DMlp);
        Gate = c.GatedMlp ? CacheArrays.Alloc<T>(c.Layers, rows * c.DMlp) : CacheArrays.Alloc<T>(c.Layers, 0);
        Act = CacheArrays.Alloc<T>(c.Layers, rows * c.DMlp);
        MlpOut = CacheArrays.Alloc<T>(c.Layers, rows * c.DModel);
        LastLogits = new T[batch * c.VocabSize];
    }

    private CpuRun(CpuRun<T> other)
    {
        Owner = other.Owner;
        Batch = other.Batch;
        SeqLen = other.SeqLen;
        Tokens = (int[])other.Tokens.Clone();
        ResidPre = CacheArrays.Copy(other.ResidPre);
        Q = CacheArrays.Copy(other.Q);
        K = CacheArrays.Copy(other.K);
        V = CacheArrays.Copy(other.V);
        Probs = CacheArrays.Copy(other.Probs);
        Z = CacheArrays.Copy(other.Z);
        AttnOut = CacheArrays.Copy(other.AttnOut);
        Up = CacheArrays.Copy(other.Up);
        Gate = CacheArrays.Copy(other.Gate);
        Act = CacheArrays.Copy(other.Act);
        MlpOut = CacheArrays.Copy(other.MlpOut);
        LastLogits = (T[])other.LastLogits.Clone();
    }

    public object Owner { get; }
    public int Batch { get; }
    public int SeqLen { get; }
    public bool Disposed { get; private set; }
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

    public void Dispose() => Disposed = true;

}

/// <summary>
/// Activation gradients on the CPU, laid out like <see cref="CpuRun{T}"/>: <c>DResidPre[l]</c> (index L = the
/// residual after the last block), <c>DQ</c>, <c>DK</c> (after rotary), <c>DV</c>, <c>DZ</c>, <c>DAttnOut</c>,
/// <c>DAct</c> (neurons), <c>DMlpOut</c>, and <c>DProbs</c> = ∂L/∂A [batch, H, T, T].
/// </summary>
internal sealed class CpuGradients<T> : IGradientCache where T : unmanaged, INumber<T>
{
    public CpuGradients(object owner, ModelConfig c, int batch, int seqLen)
    {
        Owner = owner;
        Batch = batch;
        SeqLen = seqLen;
        int rows = batch * seqLen;
        DResidPre = CacheArrays.Alloc<T>(c.Layers + 1, rows * c.DModel);
        DQ = CacheArrays.Alloc<T>(c.Layers, rows * c.QueryWidth);
        DK = CacheArrays.Alloc<T>(c.Layers, rows * c.KvWidth);
        DV = CacheArrays.Alloc<T>(c.Layers, rows * c.KvWidth);
        DZ = CacheArrays.Alloc<T>(c.Layers, rows * c.QueryWidth);
        DAttnOut = CacheArrays.Alloc<T>(c.Layers, rows * c.DModel);
        DAct = CacheArrays.Alloc<T>(c.Layers, rows * c.DMlp);
        DMlpOut = CacheArrays.Alloc<T>(c.Layers, rows * c.DModel);
        DProbs = CacheArrays.Alloc<T>(c.Layers, batch * c.Heads * seqLen * seqLen);
    }

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

    public void Dispose() => Disposed = true;
}

/// <summary>Per-layer array helpers of the CPU caches.</summary>
internal static class CacheArrays
{
    /// <summary><paramref name="count"/> zeroed arrays of <paramref name="length"/> elements.</summary>
    public static T[][] Alloc<T>(int count, int length)
    {
        var arrays = new T[count][];
        for (int i = 0; i < count; i++) arrays[i] = new T[length];
        return arrays;
    }

    /// <summary>A deep copy.</summary>
    public static T[][] Copy<T>(T[][] arrays) => [.. arrays.Select(a => (T[])a.Clone())];
}
