using AtpFast.Tokenizers;

namespace AtpFast.Tests.Tokenizers;

/// <summary>Finds the shared tokenizer and model files (ATPFAST_SHARED, /work/shared, or a shared/ folder
/// above the test binaries) and skips visibly when they are absent.</summary>
internal static class TokenizerTestFiles
{
    private static readonly Lazy<string?> SharedRoot = new(FindSharedRoot);
    private static readonly Lazy<Gpt2BpeTokenizer> Gpt2Tokenizer = new(() =>
        Gpt2BpeTokenizer.FromEncoderFiles(Path.Combine(Gpt2Directory, "encoder.json"), Path.Combine(Gpt2Directory, "vocab.bpe")));

    public static string Gpt2Directory => Require(Path.Combine("tokenizers", "gpt2"));

    public static string Stories260KReference => Require(Path.Combine("models", "stories260K", "reference.json"));

    /// <summary>One GPT-2 tokenizer for all tests (loading parses 50k merges).</summary>
    public static Gpt2BpeTokenizer Gpt2 => Gpt2Tokenizer.Value;

    private static string Require(string relative)
    {
        string? root = SharedRoot.Value;
        string? path = root is null ? null : Path.Combine(root, relative);
        if (path is null || !(File.Exists(path) || Directory.Exists(path)))
        {
            Assert.Skip($"Shared file '{relative}' not found (set ATPFAST_SHARED to the shared folder).");
        }
        return path!;
    }

    private static string? FindSharedRoot()
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable("ATPFAST_SHARED");
        if (!string.IsNullOrEmpty(fromEnvironment) && Directory.Exists(fromEnvironment))
        {
            return fromEnvironment;
        }
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "shared");
            if (Directory.Exists(Path.Combine(candidate, "tokenizers")) || Directory.Exists(Path.Combine(candidate, "models")))
            {
                return candidate;
            }
        }
        return Directory.Exists("/work/shared") ? "/work/shared" : null;
    }
}
