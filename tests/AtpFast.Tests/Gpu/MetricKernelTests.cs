using AtpFast.Kernels;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace AtpFast.Tests.Gpu;

/// <summary><see cref="MetricKernel.Value"/> reads answer/wrong columns as <see cref="MetricShape.TwoColumns"/> says, not
/// from the row width: with a vocabulary of two tokens a full row also has two columns, and the answer may be token 1.</summary>
public sealed class MetricKernelTests : IDisposable
{
    private readonly Context _context = Context.Create(b => b.CPU().EnableAlgorithms());
    private readonly Accelerator _acc;

    public MetricKernelTests() => _acc = new CPUDevice(2, 2, 1).CreateCPUAccelerator(_context);

    public void Dispose()
    {
        _acc.Dispose();
        _context.Dispose();
    }

    private double Value(float[] logits, int answer, int wrong, MetricShape shape)
    {
        using var l = _acc.Allocate1D(logits);
        using var reference = _acc.Allocate1D<float>(1);
        using var examples = _acc.Allocate1D(new[] { 0 });
        using var answers = _acc.Allocate1D(new[] { answer });
        using var wrongs = _acc.Allocate1D(new[] { wrong });
        using var low = _acc.Allocate1D(new[] { 0.0 });
        using var high = _acc.Allocate1D(new[] { 1.0 });
        using var values = _acc.Allocate1D<double>(1);
        using var lse = _acc.Allocate1D<double>(2);
        _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>,
            ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>, MetricShape>(MetricKernel.Value)(
            1, l.View, reference.View, examples.View, answers.View, wrongs.View, low.View, high.View, values.View, lse.View, shape);
        _acc.Synchronize();
        return values.GetAsArray1D()[0];
    }

    [Fact]
    public void A_full_row_of_a_two_token_vocabulary_is_read_by_token_id()
    {
        // Full vocabulary row [logit(0), logit(1)] with answer 1 and wrong 0.
        float[] full = [0.5f, 2f];
        Assert.Equal(1.5, Value(full, 1, 0, new MetricShape(MetricCode.LogitDiff, 2, 2, TwoColumns: false)));
        Assert.Equal(1.5, Value(full, 1, 0, new MetricShape(MetricCode.NormalizedLogitDiff, 2, 2, TwoColumns: false)));
        double logProb = 2.0 - (2.0 + Math.Log(1 + Math.Exp(0.5 - 2.0)));
        Assert.Equal(logProb, Value(full, 1, 0, new MetricShape(MetricCode.LogProb, 2, 2, TwoColumns: false)), 12);
    }

    [Fact]
    public void A_two_column_row_holds_answer_then_wrong()
    {
        // Patched runs unembed only [logit(answer), logit(wrong)], whatever the vocabulary.
        float[] compact = [2f, 0.5f];
        Assert.Equal(1.5, Value(compact, 1, 0, new MetricShape(MetricCode.LogitDiff, 2, 2, TwoColumns: true)));
        Assert.Equal(1.5, Value(compact, 7, 3, new MetricShape(MetricCode.LogitDiff, 2, 50, TwoColumns: true)));
    }
}
