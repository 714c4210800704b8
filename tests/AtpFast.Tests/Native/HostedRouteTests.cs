namespace AtpFast.Tests.Native;

/// <summary>The route to the GPU: the C shim src/AtpFast.Native/hosted/atpfast_hosted.c, built as a libatpfast.so of
/// its own beside the JIT build, starts the .NET runtime through hostfxr and serves the same exports. The unchanged
/// C example (built against the NativeAOT library) runs against it and prints the same; ATP_BACKEND_CUDA reaches the GPU
/// backend's own answer; a runtime that cannot start is a status, not a crash.</summary>
[Collection(NativeCollection.Name)]
public sealed class HostedRouteTests
{
    [Fact]
    public void The_C_example_prints_the_same_through_the_hosted_runtime()
    {
        string dir = NativeBuild.HostedLibraryDir;
        string exe = Path.Combine(dir, "atp_demo");
        File.Copy(NativeBuild.DemoExecutable, exe, overwrite: true); // the very binary linked against the NativeAOT library
        var reference = DemoReference.Run(top: 10);
        var run = TestProcess.Run(exe, "10 17", NativeBuild.Work, TimeSpan.FromMinutes(2), Environment);
        Assert.True(run.ExitCode == 0, $"atp_demo (hosted) failed ({run.ExitCode}): {run.Stderr}");
        Assert.Equal(DemoReference.Expected(reference, 10, 17), run.Stdout); // CI has no GPU: auto is the CPU here
    }

    [Fact]
    public void Cuda_reaches_the_GPU_backend_and_a_missing_runtime_is_a_status()
    {
        string dir = NativeBuild.HostedLibraryDir;
        string exe = NativeBuild.CompileTestProgram(NativeBuild.TestSource("hosted_check.c"), dir);

        var run = TestProcess.Run(exe, "", NativeBuild.Work, TimeSpan.FromMinutes(2), Environment);
        Assert.True(run.ExitCode == 0, run.Stderr);
        string[] lines = run.Stdout.Split('\n');
        Assert.Equal("version 100 0.1.0", lines[0]);
        // The hosted build accepts CUDA; the GPU backend then answers for itself (no device, or not built yet: NOT_AVAILABLE).
        Assert.StartsWith("context_create cuda ATP_OK", lines[1], StringComparison.Ordinal);
        Assert.Matches(@"^model_load_demo cuda (ATP_OK|ATP_ERR_NOT_AVAILABLE \| atp_model_load_demo: ATP_BACKEND_CUDA: .+)$", lines[2]);
        Assert.DoesNotContain("not available in this build: the NativeAOT library", run.Stdout, StringComparison.Ordinal);
        Assert.StartsWith("context_create bad ATP_ERR_BAD_ARGUMENT | atp_context_create: backend 9", lines[3], StringComparison.Ordinal);

        var broken = TestProcess.Run(exe, "", NativeBuild.Work, TimeSpan.FromMinutes(2), env =>
        {
            Environment(env);
            env["ATPFAST_MANAGED_DIR"] = "/nonexistent/atpfast";
        });
        Assert.True(broken.ExitCode == 0, broken.Stderr);
        Assert.Contains("context_create cuda ATP_ERR_NOT_AVAILABLE | atp_context_create: the hosted .NET runtime is not available: ",
            broken.Stdout, StringComparison.Ordinal);
        Assert.Contains("/nonexistent/atpfast/libatpfast.runtimeconfig.json", broken.Stdout, StringComparison.Ordinal);
    }

    // nethost finds the runtime through DOTNET_ROOT (else the default install location): point it at the SDK's.
    private static void Environment(IDictionary<string, string?> env) => env["DOTNET_ROOT"] = NativeBuild.DotnetRoot;
}
