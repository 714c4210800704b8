using System.Text.Json;
using AtpFast.Tokenizers;

namespace AtpFast.Tasks;

/// <summary>One clean/noise prompt pair of equal token length, with the answer and the wrong (contrast)
/// token the metric compares at the last position.</summary>
/// <param name="Clean">Clean prompt token ids.</param>
/// <param name="Noise">Counterfactual prompt token ids (same length as <paramref name="Clean"/>).</param>
/// <param name="Answer">Token the clean prompt should predict.</param>
/// <param name="Wrong">Contrast token (logit difference = answer − wrong).</param>
/// <param name="Line">1-based line in the task file (0 when built in code), for error messages.</param>
public sealed record PromptPair(int[] Clean, int[] Noise, int Answer, int Wrong, int Line = 0)
{
    /// <summary>Tokens per prompt.</summary>
    public int Length => Clean.Length;
}

/// <summary>Error in a task file; the message names the line and the field.</summary>
public sealed class TaskFileException : AtpFastException
{
    public TaskFileException() { }
    public TaskFileException(string message) : base(message) { }
    public TaskFileException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// Reads task files: JSONL, one pair per line, <c>{"clean": ..., "noise": ..., "answer": ..., "wrong": ...}</c>.
/// Prompts are text (tokenised with the model's tokenizer) or arrays of token ids; answers are a string that
/// must be exactly one token, or an id. Blank lines are skipped.
/// </summary>
public static class TaskFile
{
    /// <summary>Parses <paramref name="jsonl"/>; <paramref name="source"/> names the file in messages.</summary>
    /// <exception cref="TaskFileException">Malformed JSON, a missing field, unknown tokens, unequal lengths,
    /// multi-token answers or ids outside [0, <paramref name="vocabSize"/>), each with its line number.</exception>
    public static IReadOnlyList<PromptPair> Parse(string jsonl, ITokenizer? tokenizer, int vocabSize, string source = "tasks")
    {
        var pairs = new List<PromptPair>();
        using var reader = new StringReader(jsonl);
        int lineNumber = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string where = $"{source}:{lineNumber}";
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line); }
            catch (JsonException e) { throw new TaskFileException($"{where}: malformed JSON ({e.Message})", e); }
            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw new TaskFileException($"{where}: expected a JSON object with clean, noise, answer, wrong");
                int[] clean = Prompt(doc.RootElement, "clean", where, tokenizer, vocabSize);
                int[] noise = Prompt(doc.RootElement, "noise", where, tokenizer, vocabSize);
                if (clean.Length != noise.Length)
                    throw new TaskFileException(
                        $"{where}: clean has {clean.Length} tokens but noise has {noise.Length}; a pair must have equal token lengths");
                int answer = Answer(doc.RootElement, "answer", where, tokenizer, vocabSize);
                int wrong = Answer(doc.RootElement, "wrong", where, tokenizer, vocabSize);
                pairs.Add(new PromptPair(clean, noise, answer, wrong, lineNumber));
            }
        }
        if (pairs.Count == 0) throw new TaskFileException($"{source}: no prompt pairs (the task file is empty)");
        return pairs;
    }

    private static JsonElement Field(JsonElement obj, string name, string where) =>
        obj.TryGetProperty(name, out var value) ? value : throw new TaskFileException($"{where}: missing field \"{name}\"");

    private static int[] Prompt(JsonElement obj, string name, string where, ITokenizer? tokenizer, int vocabSize)
    {
        var value = Field(obj, name, where);
        int[] ids;
        if (value.ValueKind == JsonValueKind.String)
        {
            if (tokenizer is null)
                throw new TaskFileException($"{where}: \"{name}\" is text but no tokenizer is available; give token ids or a tokenizer");
            try { ids = tokenizer.Encode(value.GetString()!); }
            catch (TokenizerException e) { throw new TaskFileException($"{where}: \"{name}\": {e.Message}", e); }
        }
        else if (value.ValueKind == JsonValueKind.Array)
        {
            ids = new int[value.GetArrayLength()];
            int i = 0;
            foreach (var item in value.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out ids[i]))
                    throw new TaskFileException($"{where}: \"{name}\"[{i}] is not an integer token id");
                i++;
            }
        }
        else
        {
            throw new TaskFileException($"{where}: \"{name}\" must be text or an array of token ids");
        }
        if (ids.Length == 0) throw new TaskFileException($"{where}: \"{name}\" is an empty prompt");
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= (uint)vocabSize)
                throw new TaskFileException($"{where}: \"{name}\" token {i} has id {ids[i]}, outside the vocabulary [0, {vocabSize})");
        }
        return ids;
    }

    private static int Answer(JsonElement obj, string name, string where, ITokenizer? tokenizer, int vocabSize)
    {
        var value = Field(obj, name, where);
        int id;
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out id))
        {
        }
        else if (value.ValueKind == JsonValueKind.String)
        {
            string text = value.GetString()!;
            if (tokenizer is null)
                throw new TaskFileException($"{where}: \"{name}\" is text but no tokenizer is available; give a token id");
            int[] ids;
            try { ids = tokenizer.Encode(text); }
            catch (TokenizerException e) { throw new TaskFileException($"{where}: \"{name}\": {e.Message}", e); }
            if (ids.Length != 1)
                throw new TaskFileException($"{where}: \"{name}\" = \"{text}\" is {ids.Length} tokens; an answer must be exactly one token");
            id = ids[0];
        }
        else
        {
            throw new TaskFileException($"{where}: \"{name}\" must be a single-token string or a token id");
        }
        if ((uint)id >= (uint)vocabSize)
            throw new TaskFileException($"{where}: \"{name}\" id {id} is outside the vocabulary [0, {vocabSize})");
        return id;
    }
}

/// <summary>Helpers over lists of prompt pairs.</summary>
public static class PromptPairs
{
    /// <summary>The pairs grouped by token length (longest group first): per-position attribution runs one length at a time.</summary>
    public static IReadOnlyList<IReadOnlyList<PromptPair>> GroupByLength(IEnumerable<PromptPair> pairs) =>
        [.. pairs.GroupBy(p => p.Length).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).Select(g => (IReadOnlyList<PromptPair>)[.. g])];
}
