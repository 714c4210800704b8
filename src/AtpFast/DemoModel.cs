using AtpFast.Tokenizers;

namespace AtpFast;

/// <summary>
/// The default IOI model embedded in this assembly (trained by tools/train_models.py): its ONNX file, its
/// word-level vocabulary and its task file, so the demo and the C ABI need no files on disk.
/// </summary>
public static class DemoModel
{
    private const string ResourcePrefix = "AtpFast.Models.ioi-gpt2.";

    /// <summary>The embedded <c>model.onnx</c>, a fresh copy per call.</summary>
    /// <exception cref="AtpFastException">The assembly was built without the model file.</exception>
    public static byte[] ModelBytes()
    {
        using var stream = OpenResource("model.onnx");
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>The word-level tokenizer of the embedded <c>vocab.json</c>.</summary>
    /// <exception cref="AtpFastException">The assembly was built without the vocabulary file.</exception>
    public static WordLevelTokenizer Tokenizer() => WordLevelTokenizer.FromJson(ReadText("vocab.json"), ResourcePrefix + "vocab.json");

    /// <summary>The embedded <c>tasks.jsonl</c> (one IOI prompt pair per line) as text.</summary>
    /// <exception cref="AtpFastException">The assembly was built without the task file.</exception>
    public static string TasksJsonl() => ReadText("tasks.jsonl");

    private static string ReadText(string name)
    {
        using var reader = new StreamReader(OpenResource(name));
        return reader.ReadToEnd();
    }

    private static Stream OpenResource(string name) =>
        typeof(DemoModel).Assembly.GetManifestResourceStream(ResourcePrefix + name)
        ?? throw new AtpFastException(
            $"Embedded resource '{ResourcePrefix + name}' is missing: build AtpFast with src/AtpFast/Models/ioi-gpt2/{name} present " +
            "(written by tools/train_models.py).");
}
