using System.Globalization;
using AtpFast.Attribution;
using AtpFast.Tasks;

namespace AtpFast.Cli;

/// <summary>The model and the prompt pairs of a run, loaded and checked before anything is written.</summary>
internal sealed class RunInputs
{
    private RunInputs(ModelSource source, string modelPath, string tasksPath, string tasksName, IReadOnlyList<PromptPair> pairs,
        int allPairs, int? length)
    {
        Source = source;
        ModelPath = modelPath;
        TasksPath = tasksPath;
        TasksName = tasksName;
        Pairs = pairs;
        AllPairs = allPairs;
        Length = length;
    }

    public ModelSource Source { get; }

    /// <summary>Full path of the ONNX file, or "embedded".</summary>
    public string ModelPath { get; }

    /// <summary>Full path of the task file, or "embedded".</summary>
    public string TasksPath { get; }

    /// <summary>The task file as the user named it (for messages and the report).</summary>
    public string TasksName { get; }

    /// <summary>The pairs of the run (one token length).</summary>
    public IReadOnlyList<PromptPair> Pairs { get; }

    /// <summary>Pairs in the task file (all lengths).</summary>
    public int AllPairs { get; }

    /// <summary>The length selected with --length, if any.</summary>
    public int? Length { get; }

    public const string Embedded = "embedded";

    /// <summary>Loads the model (default: the embedded IOI model) and the task file (default with the embedded model:
    /// its held-out pairs), keeping the pairs of one token length.</summary>
    /// <exception cref="AtpFastException">A missing or unreadable file, a bad line (file:line in the message), several
    /// token lengths without --length, or pairs the model cannot run.</exception>
    public static RunInputs Load(string? modelPath, string? tokenizerPath, string? tasksPath, int? length)
    {
        if (modelPath is not null && tasksPath is null)
            throw new AtpFastException("--tasks: a task file is required with --model (JSONL, one {\"clean\", \"noise\", \"answer\", \"wrong\"} per line)");
        if (tasksPath is not null && Directory.Exists(tasksPath))
            throw new AtpFastException($"--tasks {tasksPath}: is a directory, not a task file");
        if (tasksPath is not null && !File.Exists(tasksPath))
            throw new AtpFastException($"--tasks {tasksPath}: task file not found");
        if (modelPath is not null && !File.Exists(modelPath))
            throw new AtpFastException($"--model {modelPath}: model file not found");
        string? text = null;
        if (tasksPath is not null)
        {
            try { text = File.ReadAllText(tasksPath); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new AtpFastException($"--tasks {tasksPath}: cannot read the task file ({e.Message})", e);
            }
        }
        var source = ModelSource.Load(modelPath, tokenizerPath);
        string name = tasksPath ?? "embedded tasks.jsonl";
        int vocab = source.Model.Config.VocabSize;
        IReadOnlyList<PromptPair> all, pairs;
        if (text is null && length is null)
        {
            // The embedded pairs: the largest group, as in demo and evaluate.
            pairs = DemoModel.TaskPairs(source.Tokenizer, vocab, name, out all);
            if (pairs.Count < all.Count) length = pairs[0].Length; // the file has several lengths: say which one ran
        }
        else
        {
            all = TaskFile.Parse(text ?? DemoModel.TasksJsonl(), source.Tokenizer, vocab, name);
            var groups = PromptPairs.GroupByLength(all);
            if (length is { } l)
            {
                pairs = groups.FirstOrDefault(g => g[0].Length == l) ?? throw new AtpFastException(
                    $"--length {l}: {name} has no pairs of {l} tokens (it has {Describe(groups)})");
            }
            else if (groups.Count > 1)
            {
                throw new AtpFastException(
                    $"{name}: the pairs have {groups.Count} token lengths ({Describe(groups)}); per-position nodes must mean the same position in " +
                    $"every pair, so one run takes one length: pass --length {groups[0][0].Length} (or split the file)");
            }
            else
            {
                pairs = groups[0];
            }
        }
        return new RunInputs(source, modelPath is null ? Embedded : Path.GetFullPath(modelPath), tasksPath is null ? Embedded : Path.GetFullPath(tasksPath),
            name, pairs, all.Count, length);
    }

    private static string Describe(IReadOnlyList<IReadOnlyList<PromptPair>> groups) => string.Join(", ", groups.Select(g =>
        string.Create(CultureInfo.InvariantCulture, $"{g[0].Length} tokens: {g.Count} pair{(g.Count == 1 ? "" : "s")} from line {g[0].Line}")));

    /// <summary>Text of each position of the first pair's clean prompt (for the report), or null without a tokenizer.</summary>
    public string[]? PositionLabels()
    {
        if (Source.Tokenizer is not { } tok) return null;
        try
        {
            return [.. Pairs[0].Clean.Select(id => tok.Decode([id]))];
        }
        catch (AtpFastException)
        {
            return null;
        }
    }

    /// <summary>Checks the pairs against the model and the method against the metric before any output is written.</summary>
    public void Validate(AttributionOptions options)
    {
        AttributionSession.Validate(Pairs, Source.Model.Config, options);
        if (!AtpFast.Attribution.Attribution.IsMeaningful(options.Method, options.Metric, options.Direction, out string? why))
            throw new AtpFastException($"--method {options.Method.Name()} --metric {options.Metric.Name()} --direction {options.Direction.Name()}: {why}");
    }
}
