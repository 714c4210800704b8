using System.Runtime.CompilerServices;

namespace AtpFast.Tests.Integration;

/// <summary>Locates the repository and the shared models (CI clones the repo with shared/ beside it).</summary>
internal static class ModelPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Shared => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));

    public static string Stories260K => Path.Combine(Shared, "models", "stories260K", "model.onnx");

    public static string Stories260KReference => Path.Combine(Shared, "models", "stories260K", "reference.json");

    // The test binary may be built outside the tree (--artifacts-path), so also search above this source file.
    private static string FindRepoRoot([CallerFilePath] string sourceFile = "")
    {
        foreach (string start in new[] { AppContext.BaseDirectory, Path.GetDirectoryName(sourceFile) ?? "" })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "AtpFast.sln"))) return dir.FullName;
            }
        }
        throw new InvalidOperationException($"AtpFast.sln not found above {AppContext.BaseDirectory} or {sourceFile}");
    }
}
