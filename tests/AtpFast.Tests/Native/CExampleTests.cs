using System.Globalization;

namespace AtpFast.Tests.Native;

/// <summary>The NativeAOT library end to end: README's publish command gives libatpfast.so, examples/c/atp_demo.c
/// compiles with gcc against include/atpfast.h, runs, and prints exactly what the C# API returns for the same input.</summary>
[Collection(NativeCollection.Name)]
public sealed class CExampleTests
{
    [Fact]
    public void C_example_prints_what_the_CSharp_API_returns()
    {
        var reference = DemoReference.Run(top: 10);
        var run = NativeBuild.RunDemo("");
        Assert.True(run.ExitCode == 0, $"atp_demo failed ({run.ExitCode}): {run.Stderr}");
        Assert.Equal(DemoReference.Expected(reference, 10, 9), run.Stdout);
        Assert.Contains("load-to-first-result", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void C_example_numbers_are_bit_identical_to_the_CSharp_API()
    {
        // 17 significant digits identify a double exactly: the AOT library computes the same bits as the JIT.
        const int top = 25;
        var reference = DemoReference.Run(top);
        var run = NativeBuild.RunDemo($"{top} 17");
        Assert.True(run.ExitCode == 0, $"atp_demo failed ({run.ExitCode}): {run.Stderr}");
        Assert.Equal(DemoReference.Expected(reference, top, 17), run.Stdout);
        var rows = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(6).ToList();
        Assert.Equal(top, rows.Count);
        for (int i = 0; i < top; i++)
        {
            string[] f = rows[i].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var expected = reference.Rows[i];
            Assert.Equal(expected.Rank, int.Parse(f[0], CultureInfo.InvariantCulture));
            Assert.Equal(expected.Node.Name, f[1]);
            Assert.Equal(BitConverter.DoubleToInt64Bits(expected.Estimate), BitConverter.DoubleToInt64Bits(double.Parse(f[2], CultureInfo.InvariantCulture)));
            Assert.Equal(BitConverter.DoubleToInt64Bits(expected.SignedEstimate), BitConverter.DoubleToInt64Bits(double.Parse(f[3], CultureInfo.InvariantCulture)));
            Assert.Equal(BitConverter.DoubleToInt64Bits(expected.VerifiedEffect!.Value), BitConverter.DoubleToInt64Bits(double.Parse(f[4], CultureInfo.InvariantCulture)));
        }
    }

    [Fact]
    public void Printf_g_emulation_matches_C_on_edge_cases()
    {
        Assert.Equal("10.035699", DemoReference.G(10.035699049631754, 9));
        Assert.Equal("1.23456789e-05", DemoReference.G(1.234567891e-5, 9));
        Assert.Equal("0.000123456789", DemoReference.G(1.234567891e-4, 9));
        Assert.Equal("1e+09", DemoReference.G(1e9, 9));
        Assert.Equal("123456789", DemoReference.G(123456789, 9));
        Assert.Equal("-2.5", DemoReference.G(-2.5, 9));
        Assert.Equal("0", DemoReference.G(0, 9));
    }
}

/// <summary>The embedding tests share one AOT publish and run one at a time (publishing and valgrind are heavy).</summary>
[CollectionDefinition(Name)]
public sealed class NativeCollection
{
    public const string Name = "native library";
}
