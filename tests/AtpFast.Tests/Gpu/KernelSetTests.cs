using AtpFast.Gpu;
using AtpFast.Kernels;
using ILGPU;
using ILGPU.Runtime.CPU;

namespace AtpFast.Tests.Gpu;

/// <summary>The GEMM a backend loads follows from its precision and device, decided in one place
/// (<see cref="KernelSet.ChooseGemm"/>): fp32 is the strict kernel off CUDA; TF32/BF16 need warps of 32 and groups of
/// <see cref="GemmTensorCoreKernel.Threads"/>, and a device without them is a clear error before anything is loaded.</summary>
public sealed class KernelSetTests : IDisposable
{
    private readonly Context _context = Context.Create(b => b.CPU().EnableAlgorithms());

    public void Dispose() => _context.Dispose();

    [Fact]
    public void Each_precision_chooses_its_gemm_on_a_cpu_accelerator_shaped_for_it()
    {
        using var narrow = new CPUDevice(2, 2, 2).CreateCPUAccelerator(_context);
        using var wide = new CPUDevice(32, 4, 1).CreateCPUAccelerator(_context);
        Assert.Equal(GemmVariant.Strict, KernelSet.ChooseGemm(narrow, Precision.Float32));
        Assert.Equal(GemmVariant.Strict, KernelSet.ChooseGemm(wide, Precision.Float32));
        Assert.Equal(GemmVariant.Tf32, KernelSet.ChooseGemm(wide, Precision.Tf32));
        Assert.Equal(GemmVariant.Bf16, KernelSet.ChooseGemm(wide, Precision.Bf16));
    }

    [Theory]
    [InlineData(2, 2, Precision.Tf32)]
    [InlineData(2, 2, Precision.Bf16)]
    [InlineData(32, 2, Precision.Tf32)] // warps of 32 but groups of 64 < 128 threads
    public void Tensor_core_precisions_on_a_device_without_them_are_a_clear_error(int warpSize, int warpsPerGroup, Precision precision)
    {
        using var accelerator = new CPUDevice(warpSize, warpsPerGroup, 1).CreateCPUAccelerator(_context);
        var e = Assert.Throws<AtpFastException>(() => new KernelSet(accelerator, precision));
        Assert.Contains("tensor cores", e.Message, StringComparison.Ordinal);
        Assert.Contains(precision.ToString(), e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Fp64_is_refused()
    {
        using var accelerator = new CPUDevice(2, 2, 2).CreateCPUAccelerator(_context);
        Assert.Throws<AtpFastException>(() => KernelSet.ChooseGemm(accelerator, Precision.Float64));
        Assert.Throws<AtpFastException>(() => GpuBackend.CreateCpuAccelerator(Attribution.TinyModels.Create("gpt2"), Precision.Float64));
    }
}
