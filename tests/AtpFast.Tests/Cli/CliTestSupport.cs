using System.Text.Json;
using AtpFast.Cli;
using AtpFast.Tests.Integration;
using AtpFast.Tokenizers;

namespace AtpFast.Tests.Cli;

/// <summary>Runs the atpfast command tree in-process and keeps what it printed as errors.</summary>
internal static class Atpfast
{
    public static (int Exit, string Error) Run(params string[] args)
    {
        var error = new StringWriter();
        int exit = CliApp.Run(args, error);
        return (exit, error.ToString());
    }

    /// <summary>Runs and asserts success, showing the error output otherwise.</summary>
    public static void Ok(params string[] args)
    {
        var (exit, error) = Run(args);
        Assert.True(exit == 0, $"atpfast {string.Join(' ', args)} exited {exit}: {error}");
    }
}

/// <summary>Task files for the command tests.</summary>
internal static class CliTasks
{
    public static string Stories260KModel
    {
        get
        {
            if (!File.Exists(ModelPaths.Stories260K)) Assert.Skip($"stories260K not found at {ModelPaths.Stories260K} (the shared models folder)");
            return ModelPaths.Stories260K;
        }
    }

    /// <summary>Six stories260K pairs of 15 tokens, girl/boy counterfactuals with the answer She/He: two as text (the
    /// model's piece tokenizer from reference.json next to it), four as token ids with one more token changed.</summary>
    public static string Stories260K(string folder)
    {
        var tok = PieceTokenizer.FromReferenceJson(ModelPaths.Stories260KReference);
        const string Girl = "Once upon a time, there was a little girl named Lily.", Boy = "Once upon a time, there was a little boy named Lily.";
        int[] g = tok.Encode(Girl), b = tok.Encode(Boy);
        Assert.Equal(g.Length, b.Length);
        int she = tok.Encode("She").Single(), he = tok.Encode("He").Single();
        var lines = new List<string>
        {
            JsonSerializer.Serialize(new { clean = Girl, noise = Boy, answer = "She", wrong = "He" }),
            JsonSerializer.Serialize(new { clean = Boy, noise = Girl, answer = "He", wrong = "She" }),
        };
        var rng = new Random(1);
        for (int k = 0; k < 4; k++)
        {
            int[] c = (int[])g.Clone(), n = (int[])b.Clone();
            int pos = 1 + 2 * rng.Next(4), token = rng.Next(300, 500);
            c[pos] = token;
            n[pos] = token;
            lines.Add(k % 2 == 0
                ? JsonSerializer.Serialize(new { clean = c, noise = n, answer = she, wrong = he })
                : JsonSerializer.Serialize(new { clean = n, noise = c, answer = he, wrong = she }));
        }
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, "tasks.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }
}
