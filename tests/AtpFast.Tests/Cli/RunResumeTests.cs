using AtpFast.Cli;

namespace AtpFast.Tests.Cli;

/// <summary>An interrupted <c>atpfast run</c> keeps its finished work units (written atomically), exits 130, and
/// <c>--resume</c> computes only the rest and gives the same table as an uninterrupted run.</summary>
public sealed class RunResumeTests
{
    private static RunCommand.Request Request(string tasks, string output) => new()
    {
        Model = CliTasks.Stories260KModel,
        Tasks = tasks,
        UnitPairs = 2,
        VerifyTop = 5,
        BoundDraws = 40,
        Out = output,
    };

    [Fact]
    public void An_interrupted_run_continued_with_resume_gives_the_same_table()
    {
        using var dir = new TempFolder("resume");
        string tasks = CliTasks.Stories260K(dir.Path);
        Assert.Equal(0, RunCommand.Execute(Request(tasks, dir["whole"]), CancellationToken.None));

        // Ctrl-C after the first unit: the second unit does not start.
        using var interrupt = new CancellationTokenSource();
        int exit = RunCommand.Execute(Request(tasks, dir["resumed"]), interrupt.Token, afterUnit: _ => interrupt.Cancel());
        Assert.Equal(ExitCodes.Interrupted, exit);
        Assert.Equal(["unit-000000.bin"], Directory.GetFiles(dir["resumed/units"]).Select(Path.GetFileName));
        Assert.True(File.Exists(dir["resumed/run.json"]));
        Assert.False(File.Exists(dir["resumed/results.jsonl"]));
        Assert.Empty(Directory.GetFiles(dir["resumed"], "*.tmp-*", SearchOption.AllDirectories));

        var computed = new List<int>();
        Assert.Equal(0, RunCommand.Execute(Request(tasks, dir["resumed"]) with { Resume = true }, CancellationToken.None, computed.Add));
        Assert.Equal([1, 2], computed); // unit 0 was kept, not recomputed
        Assert.Equal(File.ReadAllText(dir["whole/results.jsonl"]), File.ReadAllText(dir["resumed/results.jsonl"]));
        Assert.Equal(File.ReadAllText(dir["whole/results.csv"]), File.ReadAllText(dir["resumed/results.csv"]));
        Assert.False(Directory.Exists(dir["resumed/units"]));
    }

    [Fact]
    public void A_damaged_unit_file_is_computed_again()
    {
        using var dir = new TempFolder("resume-damaged");
        string tasks = CliTasks.Stories260K(dir.Path);
        using var interrupt = new CancellationTokenSource();
        Assert.Equal(ExitCodes.Interrupted, RunCommand.Execute(Request(tasks, dir["out"]), interrupt.Token, afterUnit: _ => interrupt.Cancel()));
        string unit = dir["out/units/unit-000000.bin"];
        byte[] bytes = File.ReadAllBytes(unit);
        File.WriteAllBytes(unit, bytes[..(bytes.Length / 2)]);
        var computed = new List<int>();
        Assert.Equal(0, RunCommand.Execute(Request(tasks, dir["out"]) with { Resume = true }, CancellationToken.None, computed.Add));
        Assert.Equal([0, 1, 2], computed);
    }

    [Fact]
    public void Resume_with_other_settings_is_refused_and_keeps_the_units()
    {
        using var dir = new TempFolder("resume-mismatch");
        string tasks = CliTasks.Stories260K(dir.Path);
        using var interrupt = new CancellationTokenSource();
        Assert.Equal(ExitCodes.Interrupted, RunCommand.Execute(Request(tasks, dir["out"]), interrupt.Token, afterUnit: _ => interrupt.Cancel()));

        var (exit, error) = Atpfast.Run("run", "--model", CliTasks.Stories260KModel, "--tasks", tasks, "--unit-pairs", "2", "--metric", "logprob",
            "--out", dir["out"], "--resume");
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains("--metric logit-diff vs logprob", error, StringComparison.Ordinal);
        Assert.Single(error.Trim().Split('\n'));
        Assert.Single(Directory.GetFiles(dir["out/units"]));
    }
}
