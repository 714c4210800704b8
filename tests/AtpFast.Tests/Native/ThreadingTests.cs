namespace AtpFast.Tests.Native;

/// <summary>The threading rules of atpfast.h (c/threads.c): runs on a shared context are serialised and runs on separate
/// contexts proceed in parallel, all bit-identical to a single-threaded run, while results are read concurrently; a
/// context destroyed during a run waits for it and leaves every handle of the context invalid.</summary>
[Collection(NativeCollection.Name)]
public sealed class ThreadingTests
{
    [Fact]
    public void Concurrent_runs_and_a_destroy_during_a_run_follow_the_header_rules()
    {
        string exe = NativeBuild.CompileTestProgram(NativeBuild.TestSource("threads.c"), NativeBuild.AotLibraryDir, posix: "200809L", libraries: "-lpthread");
        var run = TestProcess.Run(exe, "", NativeBuild.Work, TimeSpan.FromMinutes(3));
        Assert.True(run.ExitCode == 0, $"threads failed ({run.ExitCode}):\n{run.Stdout}\n{run.Stderr}");
        Assert.Contains("threads ok", run.Stdout, StringComparison.Ordinal);
        Assert.Matches("doomed run: (ATP_OK|ATP_ERR_BAD_HANDLE)", run.Stdout);
    }
}
