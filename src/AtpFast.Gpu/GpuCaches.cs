using ILGPU;
using ILGPU.Runtime;

namespace AtpFast.Gpu;

/// <summary>
/// Where each array of a cached run lives inside its one device buffer, laid out like the CPU backend's:
/// ResidPre[l] [rows, d] (l = 0..L), Q/Z [rows, H·HeadDim], K/V [rows, KvHeads·HeadDim] after rotary, Probs [batch, H, T, T],
/// AttnOut/MlpOut [rows, d], Up/Gate/Act [rows, DMlp], LastLogits [batch, vocab]; rows = batch·T.
/// </summary>
internal sealed class RunLayout
{
    public RunLayout(ModelConfig c, int batch, int seqLen)
    {
        long rows = (long)batch * seqLen, next = 0;
        long Add(long length)
        {
            long at = next;
            next += (length + 63) / 64 * 64;
            return at;
        }
        int layers = c.Layers;
        ResidPre = [.. Enumerable.Range(0, layers + 1).Select(_ => Add(rows * c.DModel))];
        Q = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.QueryWidth))];
        K = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.KvWidth))];
        V = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.KvWidth))];
        Probs = [.. Enumerable.Range(0, layers).Select(_ => Add((long)batch * c.Heads * seqLen * seqLen))];
        Z = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.QueryWidth))];
        AttnOut = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.DModel))];
        Up = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.DMlp))];
        Gate = [.. Enumerable.Range(0, layers).Select(_ => Add(c.GatedMlp ? rows * c.DMlp : 1))];
        Act = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.DMlp))];
        MlpOut = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.DModel))];
        LastLogits = Add((long)batch * c.VocabSize);
        Length = next;
    }

    public long[] ResidPre { get; }
    public long[] Q { get; }
    public long[] K { get; }
    public long[] V { get; }
    public long[] Probs { get; }
    public long[] Z { get; }
    public long[] AttnOut { get; }
    public long[] Up { get; }
    public long[] Gate { get; }
    public long[] Act { get; }
    public long[] MlpOut { get; }
    public long LastLogits { get; }
    public long Length { get; }
}

/// <summary>Where each array of a gradient cache lives in its device buffer: DResidPre[l] (l = 0..L), DQ, DK, DV, DZ,
/// DAttnOut, DAct, DMlpOut, DProbs — the CPU backend's gradients — plus the attention backward's ∂L/∂S scratch.</summary>
internal sealed class GradientLayout
{
    public GradientLayout(ModelConfig c, int batch, int seqLen)
    {
        long rows = (long)batch * seqLen, next = 0, probs = (long)batch * c.Heads * seqLen * seqLen;
        long Add(long length)
        {
            long at = next;
            next += (length + 63) / 64 * 64;
            return at;
        }
        int layers = c.Layers;
        DResidPre = [.. Enumerable.Range(0, layers + 1).Select(_ => Add(rows * c.DModel))];
        DQ = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.QueryWidth))];
        DK = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.KvWidth))];
        DV = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.KvWidth))];
        DZ = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.QueryWidth))];
        DAttnOut = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.DModel))];
        DAct = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.DMlp))];
        DMlpOut = [.. Enumerable.Range(0, layers).Select(_ => Add(rows * c.DModel))];
        DProbs = [.. Enumerable.Range(0, layers).Select(_ => Add(probs))];
        DScores = Add(probs);
        Length = next;
    }

    public long[] DResidPre { get; }
    public long[] DQ { get; }
    public long[] DK { get; }
    public long[] DV { get; }
    public long[] DZ { get; }
    public long[] DAttnOut { get; }
    public long[] DAct { get; }
    public long[] DMlpOut { get; }
    public long[] DProbs { get; }
    public long DScores { get; }
    public long Length { get; }
}

/// <summary>What every device cache tells its backend: who made it and whether it was disposed.</summary>
internal interface IGpuCache
{
    object Owner { get; }
    bool Disposed { get; }
}

/// <summary>A cached forward pass in device memory (one buffer, <see cref="RunLayout"/>), and its token ids.</summary>
internal sealed class GpuRun : IRunCache, IGpuCache
{
    private readonly ModelConfig _c;

    public GpuRun(object owner, Accelerator accelerator, ModelConfig c, int batch, int seqLen)
    {
        Owner = owner;
        _c = c;
        Batch = batch;
        SeqLen = seqLen;
        Layout = new RunLayout(c, batch, seqLen);
        Buffer = accelerator.Allocate1D<float>(Layout.Length);
        Tokens = accelerator.Allocate1D<int>((long)batch * seqLen);
    }

    public object Owner { get; }
    public int Batch { get; }
    public int SeqLen { get; }
    public bool Disposed { get; private set; }

    /// <summary>Incremented by every write of a node value.</summary>
    public int Version { get; set; }

    public RunLayout Layout { get; }
    public MemoryBuffer1D<float, Stride1D.Dense> Buffer { get; }
    public MemoryBuffer1D<int, Stride1D.Dense> Tokens { get; }

    private int Rows => Batch * SeqLen;

    public ArrayView<float> View(long offset, long length) => Buffer.View.SubView(offset, length);
    public ArrayView<float> ResidPre(int l) => View(Layout.ResidPre[l], (long)Rows * _c.DModel);
    public ArrayView<float> Q(int l) => View(Layout.Q[l], (long)Rows * _c.QueryWidth);
    public ArrayView<float> K(int l) => View(Layout.K[l], (long)Rows * _c.KvWidth);
    public ArrayView<float> V(int l) => View(Layout.V[l], (long)Rows * _c.KvWidth);
    public ArrayView<float> Probs(int l) => View(Layout.Probs[l], (long)Batch * _c.Heads * SeqLen * SeqLen);
    public ArrayView<float> Z(int l) => View(Layout.Z[l], (long)Rows * _c.QueryWidth);
    public ArrayView<float> AttnOut(int l) => View(Layout.AttnOut[l], (long)Rows * _c.DModel);
    public ArrayView<float> Up(int l) => View(Layout.Up[l], (long)Rows * _c.DMlp);
    public ArrayView<float> Gate(int l) => View(Layout.Gate[l], _c.GatedMlp ? (long)Rows * _c.DMlp : 1);
    public ArrayView<float> Act(int l) => View(Layout.Act[l], (long)Rows * _c.DMlp);
    public ArrayView<float> MlpOut(int l) => View(Layout.MlpOut[l], (long)Rows * _c.DModel);
    public ArrayView<float> LastLogits => View(Layout.LastLogits, (long)Batch * _c.VocabSize);

    /// <summary>The array holding nodes of <paramref name="type"/> in <paramref name="layer"/> and its row width.</summary>
    public (ArrayView<float> Array, int Width) Site(NodeType type, int layer) => type switch
    {
        NodeType.Query => (Q(layer), _c.QueryWidth),
        NodeType.Key => (K(layer), _c.KvWidth),
        NodeType.Value => (V(layer), _c.KvWidth),
        NodeType.HeadOutput => (Z(layer), _c.QueryWidth),
        NodeType.Neuron => (Act(layer), _c.DMlp),
        NodeType.ResidPre => (ResidPre(layer), _c.DModel),
        NodeType.AttnOut => (AttnOut(layer), _c.DModel),
        NodeType.MlpOut => (MlpOut(layer), _c.DModel),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    public void Dispose()
    {
        if (Disposed) return;
        Disposed = true;
        Buffer.Dispose();
        Tokens.Dispose();
    }
}

/// <summary>Activation gradients in device memory (<see cref="GradientLayout"/>).</summary>
internal sealed class GpuGradients : IGradientCache, IGpuCache
{
    private readonly ModelConfig _c;

    public GpuGradients(object owner, Accelerator accelerator, ModelConfig c, int batch, int seqLen)
    {
        Owner = owner;
        _c = c;
        Batch = batch;
        SeqLen = seqLen;
        Layout = new GradientLayout(c, batch, seqLen);
        Buffer = accelerator.Allocate1D<float>(Layout.Length);
    }

    public object Owner { get; }
    public int Batch { get; }
    public int SeqLen { get; }
    public int ValidThroughLayer { get; set; } = -1;
    public bool Disposed { get; private set; }
    public GradientLayout Layout { get; }
    public MemoryBuffer1D<float, Stride1D.Dense> Buffer { get; }

    private int Rows => Batch * SeqLen;
    private long ProbsLength => (long)Batch * _c.Heads * SeqLen * SeqLen;

    public ArrayView<float> View(long offset, long length) => Buffer.View.SubView(offset, length);
    public ArrayView<float> DResidPre(int l) => View(Layout.DResidPre[l], (long)Rows * _c.DModel);
    public ArrayView<float> DQ(int l) => View(Layout.DQ[l], (long)Rows * _c.QueryWidth);
    public ArrayView<float> DK(int l) => View(Layout.DK[l], (long)Rows * _c.KvWidth);
    public ArrayView<float> DV(int l) => View(Layout.DV[l], (long)Rows * _c.KvWidth);
    public ArrayView<float> DZ(int l) => View(Layout.DZ[l], (long)Rows * _c.QueryWidth);
    public ArrayView<float> DAttnOut(int l) => View(Layout.DAttnOut[l], (long)Rows * _c.DModel);
    public ArrayView<float> DAct(int l) => View(Layout.DAct[l], (long)Rows * _c.DMlp);
    public ArrayView<float> DMlpOut(int l) => View(Layout.DMlpOut[l], (long)Rows * _c.DModel);
    public ArrayView<float> DProbs(int l) => View(Layout.DProbs[l], ProbsLength);
    public ArrayView<float> DScores => View(Layout.DScores, ProbsLength);

    /// <summary>The gradient array of nodes of <paramref name="type"/> in <paramref name="layer"/>.</summary>
    public ArrayView<float> Site(NodeType type, int layer) => type switch
    {
        NodeType.Query => DQ(layer),
        NodeType.Key => DK(layer),
        NodeType.Value => DV(layer),
        NodeType.HeadOutput => DZ(layer),
        NodeType.Neuron => DAct(layer),
        NodeType.ResidPre => DResidPre(layer),
        NodeType.AttnOut => DAttnOut(layer),
        NodeType.MlpOut => DMlpOut(layer),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    public void Dispose()
    {
        if (Disposed) return;
        Disposed = true;
        Buffer.Dispose();
    }
}
