namespace AtpFast.Tests;

/// <summary>A new, empty temporary folder (<c>atpfast-{name}-…</c>), removed with its contents at the end of a test.</summary>
internal sealed class TempFolder(string name) : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory($"atpfast-{name}-").FullName;

    /// <summary>The full path of <paramref name="relative"/> inside the folder.</summary>
    public string this[string relative] => System.IO.Path.Combine(Path, relative);

    /// <summary>Writes <paramref name="contents"/> to the file <paramref name="fileName"/> in the folder; its full path.</summary>
    public string File(string fileName, string contents)
    {
        string path = this[fileName];
        System.IO.File.WriteAllText(path, contents);
        return path;
    }

    public void Dispose()
    {
        if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
    }
}
