// AtpFast build script (Cake 7). Run with `dotnet tool restore && dotnet cake --target=<Build|Test|Bench|Publish>`.
var target = Argument("target", "Test");
var configuration = Argument("configuration", "Release");
var runtime = Argument("runtime", "linux-x64");

Task("Build")
    .Does(() =>
{
    DotNetBuild("AtpFast.sln", new DotNetBuildSettings { Configuration = configuration });
});

Task("Test")
    .IsDependentOn("Build")
    .Does(() =>
{
    // The same command README and .ci/run use.
    DotNetTest("tests/AtpFast.Tests/AtpFast.Tests.csproj", new DotNetTestSettings
    {
        Configuration = configuration,
        NoBuild = true,
    });
});

Task("Bench")
    .IsDependentOn("Build")
    .Does(() =>
{
    // CPU benchmarks (BenchmarkDotNet) and the PyTorch/OpenBLAS peers; results land in perf/results/.
    DotNetRun("perf/AtpFast.Benchmarks/AtpFast.Benchmarks.csproj", new DotNetRunSettings
    {
        Configuration = configuration,
        NoBuild = true,
    });
});

Task("Publish")
    .Does(() =>
{
    // Self-contained CLI (JIT runtime: the GPU backend compiles kernels from IL at run time).
    DotNetPublish("src/AtpFast.Cli/AtpFast.Cli.csproj", new DotNetPublishSettings
    {
        Configuration = configuration,
        Runtime = runtime,
        SelfContained = true,
        OutputDirectory = "artifacts/atpfast",
    });
});

RunTarget(target);
