using System.Collections.Concurrent;
using AtpFast.Tests.Integration;

namespace AtpFast.Tests.Native;

/// <summary>
/// Builds what the embedding tests run, once per test run: the NativeAOT library (README's publish command, into an
/// isolated artifacts folder so the repository's own bin/obj are never touched), the hosted build with its C shim,
/// and C programs compiled with gcc against include/atpfast.h.
/// </summary>
internal static class NativeBuild
{
    public static string Repo => ModelPaths.RepoRoot;

    public static string Header => Path.Combine(Repo, "src", "AtpFast.Native", "include", "atpfast.h");

    public static string IncludeDir => Path.GetDirectoryName(Header)!;

    /// <summary>The embedded IOI model's ONNX file in the source tree.</summary>
    public static string IoiModel => Path.Combine(Repo, "src", "AtpFast", "Models", "ioi-gpt2", "model.onnx");

    /// <summary>Scratch folder under the repository's ignored artifacts/ (kept between runs: incremental builds).</summary>
    public static string Work { get; } = Directory.CreateDirectory(Path.Combine(Repo, "artifacts", "native-tests")).FullName;

    private static readonly Lazy<string> AotDir = new(PublishAot, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lazy<string> HostedDir = new(PublishHosted, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lazy<string> DemoProgram = new(() => CompileExample(AotLibraryDir), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The folder holding the published libatpfast.so (NativeAOT).</summary>
    public static string AotLibraryDir => AotDir.Value;

    public static string AotLibrary => Path.Combine(AotLibraryDir, "libatpfast.so");

    /// <summary>The folder of the hosted route: libatpfast.so (the hostfxr shim) beside libatpfast.dll and its runtime files.</summary>
    public static string HostedLibraryDir => HostedDir.Value;

    /// <summary>examples/c/atp_demo.c built by its README's gcc line, linked against the AOT library.</summary>
    public static string DemoExecutable => DemoProgram.Value;

    private static readonly ConcurrentDictionary<string, Lazy<TestProcess.Result>> DemoRuns = new();

    /// <summary><see cref="DemoExecutable"/> run with <paramref name="arguments"/>, once per test run for each distinct
    /// command line (the C and the Python example tests compare against the same runs).</summary>
    public static TestProcess.Result RunDemo(string arguments) => DemoRuns.GetOrAdd(arguments, args => new Lazy<TestProcess.Result>(
        () => TestProcess.Run(DemoExecutable, args, Work, TimeSpan.FromMinutes(2)), LazyThreadSafetyMode.ExecutionAndPublication)).Value;

    /// <summary>Skips (visibly) when gcc is missing; .ci/run installs it.</summary>
    public static void RequireGcc()
    {
        if (Which("gcc") is null) Assert.Skip("gcc is not installed (apt-get install gcc; .ci/run installs it when run as root)");
    }

    public static string? Which(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, program)).FirstOrDefault(File.Exists);

    private static string PublishAot()
    {
        string output = Path.Combine(Work, "aot");
        // README's command, plus an isolated artifacts path and output folder.
        Dotnet($"publish \"{Path.Combine(Repo, "src", "AtpFast.Native")}\" -c Release -r linux-x64 -p:PublishAot=true " +
               $"--artifacts-path \"{Path.Combine(Work, "aot-artifacts")}\" -o \"{output}\"");
        string library = Path.Combine(output, "libatpfast.so");
        Assert.True(File.Exists(library), $"dotnet publish did not produce {library}");
        return output;
    }

    private static string PublishHosted()
    {
        RequireGcc();
        string output = Path.Combine(Work, "hosted");
        Dotnet($"publish \"{Path.Combine(Repo, "src", "AtpFast.Native")}\" -c Release " +
               $"--artifacts-path \"{Path.Combine(Work, "hosted-artifacts")}\" -o \"{output}\"");
        Assert.True(File.Exists(Path.Combine(output, "libatpfast.dll")), "the hosted publish did not produce libatpfast.dll");
        string nethost = NethostDir();
        Gcc($"-O2 -Wall -Wextra -Werror -std=c11 -shared -fPIC -I \"{IncludeDir}\" -I \"{nethost}\" " +
            $"\"{Path.Combine(Repo, "src", "AtpFast.Native", "hosted", "atpfast_hosted.c")}\" " +
            $"-Wl,--version-script=\"{Path.Combine(Repo, "src", "AtpFast.Native", "hosted", "libatpfast.map")}\" " +
            $"-o \"{Path.Combine(output, "libatpfast.so")}\" \"{Path.Combine(nethost, "libnethost.a")}\" -lstdc++ -ldl -lpthread");
        return output;
    }

    /// <summary>The SDK's packs/Microsoft.NETCore.App.Host.linux-x64/&lt;version&gt;/runtimes/linux-x64/native (nethost.h, libnethost.a).</summary>
    public static string NethostDir()
    {
        string dotnet = Path.GetDirectoryName(ResolveDotnet())!;
        string packs = Path.Combine(dotnet, "packs", "Microsoft.NETCore.App.Host.linux-x64");
        var dir = Directory.Exists(packs)
            ? Directory.GetDirectories(packs).Select(v => Path.Combine(v, "runtimes", "linux-x64", "native"))
                .Where(d => File.Exists(Path.Combine(d, "libnethost.a"))).OrderByDescending(d => d, StringComparer.Ordinal).FirstOrDefault()
            : null;
        if (dir is null) Assert.Skip($"the SDK has no nethost (looked in {packs})");
        return dir;
    }

    /// <summary>Compiles the C example with its README's gcc line; the executable finds libatpfast.so beside itself.</summary>
    private static string CompileExample(string libraryDir) =>
        CompileTestProgram(Path.Combine(Repo, "examples", "c", "atp_demo.c"), libraryDir, posix: "199309L", libraries: "-lm");

    /// <summary>A C program under tests/AtpFast.Tests/Native/c/.</summary>
    public static string TestSource(string fileName) => Path.Combine(Repo, "tests", "AtpFast.Tests", "Native", "c", fileName);

    /// <summary>Compiles <paramref name="source"/> with gcc (C11, every warning an error) against include/atpfast.h into
    /// <paramref name="libraryDir"/>, named after the source, linked against the libatpfast.so there, which the executable
    /// finds beside itself; its path.</summary>
    /// <param name="posix">The _POSIX_C_SOURCE level the program needs, if any.</param>
    /// <param name="optimize">Optimisation and debug flags.</param>
    /// <param name="libraries">Libraries linked after libatpfast.</param>
    public static string CompileTestProgram(string source, string libraryDir, string? posix = null, string optimize = "-O2", string libraries = "")
    {
        string exe = Path.Combine(libraryDir, Path.GetFileNameWithoutExtension(source));
        Gcc($"{optimize} -Wall -Wextra -Werror -std=c11 {(posix is null ? "" : $"-D_POSIX_C_SOURCE={posix} ")}-I \"{IncludeDir}\" " +
            $"\"{source}\" -o \"{exe}\" -L \"{libraryDir}\" -latpfast -Wl,-rpath,$ORIGIN {libraries}".TrimEnd());
        return exe;
    }

    /// <summary>gcc with <paramref name="arguments"/>; fails the test with gcc's messages.</summary>
    public static void Gcc(string arguments)
    {
        RequireGcc();
        var r = TestProcess.Run("gcc", arguments, Repo, TimeSpan.FromMinutes(2));
        Assert.True(r.ExitCode == 0, $"gcc {arguments}\nfailed ({r.ExitCode}):\n{r.Stdout}\n{r.Stderr}");
    }

    private static void Dotnet(string arguments)
    {
        var r = TestProcess.Run(ResolveDotnet(), arguments, Repo, TimeSpan.FromMinutes(12), env =>
        {
            // The test host runs under `dotnet test`: its MSBuild variables would point the nested build at the wrong SDK pieces.
            foreach (string key in env.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) ||
                                                       k.StartsWith("MSBUILD", StringComparison.Ordinal) || k == "DOTNET_HOST_PATH").ToList())
                env.Remove(key);
            env["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
            env["DOTNET_NOLOGO"] = "1";
        });
        Assert.True(r.ExitCode == 0, $"dotnet {arguments}\nfailed ({r.ExitCode}):\n{TestProcess.Tail(r.Stdout, 6000)}\n{TestProcess.Tail(r.Stderr, 3000)}");
    }

    /// <summary>The folder of the dotnet executable running the builds (its shared/ holds the runtime the hosted route uses).</summary>
    public static string DotnetRoot => Path.GetDirectoryName(ResolveDotnet())!;

    private static string ResolveDotnet()
    {
        string? root = Environment.GetEnvironmentVariable("DOTNET_ROOT");
        if (root is not null && File.Exists(Path.Combine(root, "dotnet"))) return Path.Combine(root, "dotnet");
        string? onPath = Which("dotnet");
        if (onPath is not null) return new FileInfo(onPath).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? onPath;
        string host = Path.Combine(Path.GetDirectoryName(typeof(object).Assembly.Location)!, "..", "..", "..", "dotnet");
        return File.Exists(host) ? Path.GetFullPath(host) : "dotnet";
    }
}
