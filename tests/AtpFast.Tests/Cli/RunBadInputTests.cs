using AtpFast.Cli;

namespace AtpFast.Tests.Cli;

/// <summary>Bad input to <c>atpfast run</c>: one line naming the file, line or flag, exit code 2, and no output folder
/// left behind — whether the problem is found before the run (flags, files, lines) or during it (a metric undefined
/// for a pair).</summary>
public sealed class RunBadInputTests
{
    // Embedded IOI model (word-level vocabulary): pairs of 5 tokens.
    private const string Good = """{"clean": "When Mary and John went", "noise": "When Mary and Tom went", "answer": "Mary", "wrong": "John"}""";

    public static TheoryData<string, string[], string, string[]> Cases => new()
    {
        { "missing model", ["--model", "{dir}/nope.onnx", "--tasks", "{tasks}"], Good, ["--model", "nope.onnx", "not found"] },
        { "missing task file", ["--tasks", "{dir}/nope.jsonl"], Good, ["--tasks", "nope.jsonl", "not found"] },
        { "unreadable task file", ["--tasks", "{dir}"], Good, ["--tasks", "is a directory"] },
        { "malformed JSON line", ["--tasks", "{tasks}"], Good + "\n{\"clean\": [1, 2", ["tasks.jsonl:2", "malformed JSON"] },
        { "unequal token lengths", ["--tasks", "{tasks}"], Good + "\n" + Good + "\n" + """{"clean": "When Mary went", "noise": "When Mary and Tom went", "answer": "Mary", "wrong": "John"}""",
            ["tasks.jsonl:3", "equal token lengths"] },
        { "unknown token", ["--tasks", "{tasks}"], """{"clean": "When Zebulon and John went", "noise": "When Mary and Tom went", "answer": "Mary", "wrong": "John"}""",
            ["tasks.jsonl:1", "Zebulon"] },
        { "answer not a single token", ["--tasks", "{tasks}"], """{"clean": "When Mary and John went", "noise": "When Mary and Tom went", "answer": "Mary John", "wrong": "John"}""",
            ["tasks.jsonl:1", "\"answer\"", "exactly one token"] },
        { "several token lengths", ["--tasks", "{tasks}"], Good + "\n" + """{"clean": "When Mary and John went to", "noise": "When Mary and Tom went to", "answer": "Mary", "wrong": "John"}""",
            ["2 token lengths", "--length"] },
        { "unknown method", ["--tasks", "{tasks}", "--method", "atp**"], Good, ["--method", "atp**"] },
        { "unknown node type", ["--tasks", "{tasks}", "--nodes", "q,heads"], Good, ["--nodes", "heads"] },
        { "unknown metric", ["--tasks", "{tasks}", "--metric", "accuracy"], Good, ["--metric", "accuracy"] },
        { "shard index beyond the count", ["--tasks", "{tasks}", "--shard", "3/2"], Good, ["--shard 3/2"] },
        { "malformed shard", ["--tasks", "{tasks}", "--shard", "two"], Good, ["--shard two"] },
        { "unknown backend", ["--tasks", "{tasks}", "--backend", "tpu"], Good, ["--backend tpu"] },
        { "cuda without a device", ["--tasks", "{tasks}", "--backend", "cuda"], Good, ["CUDA"] },
        { "unshardable method", ["--tasks", "{tasks}", "--method", "hierarchical", "--shard", "0/2"], Good, ["--shard 0/2", "hierarchical"] },
        { "meaningless metric", ["--tasks", "{tasks}", "--metric", "kl"], Good, ["--metric kl", "noising"] },
        { "undefined during the run", ["--tasks", "{tasks}", "--metric", "norm-logit-diff"], Good + "\n" + """{"clean": "When Mary and John went", "noise": "When Mary and John went", "answer": "Mary", "wrong": "John"}""",
            ["task file line 2", "normalised logit difference"] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Bad_input_gives_one_line_naming_it_and_leaves_no_output(string why, string[] args, string taskFile, string[] expected)
    {
        using var dir = new TempFolder("bad-input");
        string tasks = dir.File("tasks.jsonl", taskFile);
        string output = dir["out"];
        string[] argv = ["run", .. args.Select(a => a.Replace("{dir}", dir.Path, StringComparison.Ordinal).Replace("{tasks}", tasks, StringComparison.Ordinal)),
            "--out", output, "--bound", "0", "--verify-top", "0"];
        var (exit, error) = Atpfast.Run(argv);
        Assert.True(exit == ExitCodes.BadInput, $"{why}: exit {exit}, {error}");
        var lines = error.Trim().Split('\n');
        Assert.True(lines.Length == 1, $"{why}: expected one line, got:\n{error}");
        Assert.StartsWith("error: ", lines[0], StringComparison.Ordinal);
        foreach (string part in expected) Assert.Contains(part, lines[0], StringComparison.Ordinal);
        Assert.False(Directory.Exists(output), $"{why}: the output folder was left behind");
    }

    [Fact]
    public void A_missing_out_flag_is_a_parse_error()
    {
        var (exit, error) = Atpfast.Run("run", "--method", "atp");
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains("--out", error, StringComparison.Ordinal);
    }
}
