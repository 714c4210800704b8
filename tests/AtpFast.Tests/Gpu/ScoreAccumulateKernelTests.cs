using AtpFast.Kernels;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace AtpFast.Tests.Gpu;

/// <summary><see cref="ScoreAccumulateKernel"/> runs one thread per (node, position) and per node's @* id and still adds
/// exactly what one thread per node adds, in the same order: its sums equal a sequential host loop bit for bit.</summary>
public sealed class ScoreAccumulateKernelTests : IDisposable
{
    private readonly Context _context = Context.Create(b => b.CPU().EnableAlgorithms());
    private readonly Accelerator _acc;

    public ScoreAccumulateKernelTests() => _acc = new CPUDevice(2, 2, 2).CreateCPUAccelerator(_context);

    public void Dispose()
    {
        _acc.Dispose();
        _context.Dispose();
    }

    [Theory]
    [InlineData(3, 2, 5, true, true, false)]
    [InlineData(3, 1, 7, true, true, false)]
    [InlineData(4, 3, 4, true, false, false)]
    [InlineData(2, 2, 6, false, true, false)]
    [InlineData(3, 2, 5, true, true, true)]
    [InlineData(1, 4, 1, true, true, true)]
    public void Sums_equal_the_sequential_per_node_loop_bit_for_bit(int batch, int count, int seqLen, bool perPosition, bool allPositions, bool explicitAll)
    {
        var rng = new Random(batch * 100 + count * 10 + seqLen);
        double[] scores = [.. Enumerable.Range(0, batch * count * seqLen).Select(_ => (rng.NextDouble() - 0.5) * Math.Pow(10, rng.Next(-3, 4)))];
        double[] allScores = explicitAll ? [.. Enumerable.Range(0, batch * count).Select(_ => rng.NextDouble() - 0.5)] : [];
        const int firstId = 3;
        int ids = firstId + count * (seqLen + 1) + 2;
        double[] abs = [.. Enumerable.Range(0, ids).Select(_ => rng.NextDouble())], signed = [.. Enumerable.Range(0, ids).Select(_ => rng.NextDouble() - 0.5)];
        double weight = 0.37;

        // The reference: one node at a time, examples in order, as the kernel did with one thread per node.
        double[] expectedAbs = [.. abs], expectedSigned = [.. signed];
        for (int node = 0; node < count; node++)
        {
            int id = firstId + node * (seqLen + 1);
            for (int e = 0; e < batch; e++)
            {
                double all = 0;
                for (int t = 0; t < seqLen; t++)
                {
                    double s = scores[(e * count + node) * seqLen + t];
                    all += s;
                    if (perPosition)
                    {
                        expectedAbs[id + t] += weight * Math.Abs(s);
                        expectedSigned[id + t] += weight * s;
                    }
                }
                if (allPositions)
                {
                    if (explicitAll) all = allScores[e * count + node];
                    expectedAbs[id + seqLen] += weight * Math.Abs(all);
                    expectedSigned[id + seqLen] += weight * all;
                }
            }
        }

        using var dScores = _acc.Allocate1D(scores);
        using var dAll = _acc.Allocate1D<double>(Math.Max(1, allScores.Length));
        if (explicitAll) dAll.CopyFromCPU(allScores);
        using var dAbs = _acc.Allocate1D(abs);
        using var dSigned = _acc.Allocate1D(signed);
        var kernel = _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>,
            int, int, int, int, double, Flag, Flag>(ScoreAccumulateKernel.Run);
        kernel(count * (seqLen + 1), dScores.View, explicitAll ? dAll.View : dAll.View.SubView(0, 0), dAbs.View, dSigned.View, batch, count, seqLen,
            firstId, weight, perPosition, allPositions);
        _acc.Synchronize();
        Assert.Equal(expectedAbs, dAbs.GetAsArray1D());
        Assert.Equal(expectedSigned, dSigned.GetAsArray1D());
    }
}
