using AtpFast.Tasks;
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

    /// <summary>The pairs of the embedded <c>tasks.jsonl</c> of its most common token length (per-position nodes need
    /// one length): the default distribution of the demo, run, evaluate, bench and selftest.</summary>
    /// <param name="tokenizer">Encodes the text prompts (the embedded model's is <see cref="Tokenizer"/>).</param>
    /// <param name="vocabSize">The model's vocabulary size (token ids are checked against it).</param>
    /// <param name="source">Names the task file in error messages.</param>
    /// <param name="all">Every pair of the file, of all lengths.</param>
    /// <exception cref="TaskFileException">A pair the tokenizer or the vocabulary cannot express.</exception>
    internal static IReadOnlyList<PromptPair> TaskPairs(ITokenizer? tokenizer, int vocabSize, string source, out IReadOnlyList<PromptPair> all)
    {
        all = TaskFile.Parse(TasksJsonl(), tokenizer, vocabSize, source);
        return PromptPairs.GroupByLength(all)[0];
    }

    /// <inheritdoc cref="TaskPairs(ITokenizer?, int, string, out IReadOnlyList{PromptPair})"/>
    internal static IReadOnlyList<PromptPair> TaskPairs(ITokenizer? tokenizer, int vocabSize, string source = "tasks") =>
        TaskPairs(tokenizer, vocabSize, source, out _);

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
