namespace AtpFast.Tests.Native;

/// <summary>examples/python/atp_demo.py (ctypes, run by /usr/bin/python3 as CI has it) loads the NativeAOT library and
/// prints exactly what the C example and the C# API print.</summary>
[Collection(NativeCollection.Name)]
public sealed class PythonExampleTests
{
    private const string Python = "/usr/bin/python3";

    [Theory]
    [InlineData(10, 9)]
    [InlineData(25, 17)]
    public void Python_ctypes_example_prints_what_the_C_example_and_the_CSharp_API_print(int top, int digits)
    {
        if (!File.Exists(Python)) Assert.Skip($"{Python} is not installed (.ci/run installs python3 when run as root)");
        string script = Path.Combine(NativeBuild.Repo, "examples", "python", "atp_demo.py");
        var reference = DemoReference.Run(top);
        var python = TestProcess.Run(Python, $"\"{script}\" {top} {digits}", NativeBuild.Work, TimeSpan.FromMinutes(2),
            env => env["ATPFAST_LIB"] = NativeBuild.AotLibrary);
        Assert.True(python.ExitCode == 0, $"atp_demo.py failed ({python.ExitCode}): {python.Stderr}");
        Assert.Equal(DemoReference.Expected(reference, top, digits), python.Stdout);

        var c = NativeBuild.RunDemo($"{top} {digits}");
        Assert.Equal(c.Stdout, python.Stdout);
    }
}
