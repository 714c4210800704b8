using AtpFast.Cli;

namespace AtpFast.Tests.Cli;

/// <summary><c>atpfast merge</c> refuses what it cannot combine exactly — a shard not finished or missing, parts of
/// different runs, a folder that is not a shard output — with one line naming it, exit code 2 and no output.</summary>
public sealed class MergeBadInputTests
{
    [Fact]
    public void Missing_shards_and_mixed_runs_are_named()
    {
        using var dir = new TempFolder("merge-bad");
        string tasks = CliTasks.Stories260K(dir.Path);
        string[] common = ["run", "--model", CliTasks.Stories260KModel, "--tasks", tasks, "--unit-pairs", "2", "--verify-top", "0", "--bound", "0"];
        Atpfast.Ok([.. common, "--out", dir["s0"], "--shard", "0/2"]);
        Atpfast.Ok([.. common, "--out", dir["other1"], "--shard", "1/2", "--metric", "logprob"]);

        var (exit, error) = Atpfast.Run("merge", dir["s0"], "--out", dir["merged"]);
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains("shard 1/2: unit 1", error, StringComparison.Ordinal);

        (exit, error) = Atpfast.Run("merge", dir["s0"], dir["other1"], "--out", dir["merged"]);
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains("different runs", error, StringComparison.Ordinal);
        Assert.Contains("--metric logit-diff vs logprob", error, StringComparison.Ordinal);

        (exit, error) = Atpfast.Run("merge", dir.Path, "--out", dir["merged"]);
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains("no run.json", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir["merged"]));
    }
}
