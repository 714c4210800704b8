using System.CommandLine;
using System.Globalization;
using AtpFast.Attribution;
using AtpFast.Gpu;
using Spectre.Console;

namespace AtpFast.Cli;

/// <summary>
/// <c>atpfast merge SHARD_DIR... --out DIR</c>: combines the work units that <c>run --shard i/n</c> wrote (in unit
/// order, as a single run does), verifies the top nodes and computes the bound over every pair, and writes the same
/// files a single run writes. The model and the task file are read from the shards' run.json unless given.
/// </summary>
internal static class MergeCommand
{
    internal sealed record Request
    {
        public required IReadOnlyList<string> Shards { get; init; }
        public required string Out { get; init; }
        public string? Model { get; init; }
        public string? Tokenizer { get; init; }
        public string? Tasks { get; init; }
        public string? Backend { get; init; }
        public int Threads { get; init; }
    }

    public static Command Create()
    {
        var shards = new Argument<string[]>("shards") { Description = "the --out folders of the shard runs", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--out") { Description = "output folder for the merged results", Required = true };
        var model = new Option<string?>("--model") { Description = "ONNX file (default: the path recorded by the shards)" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "tokenizer file (default: the one recorded by the shards, or found next to the model)" };
        var tasks = new Option<string?>("--tasks") { Description = "task file (default: the path recorded by the shards)" };
        var backend = new Option<string?>("--backend") { Description = "backend for verification and the bound: cpu, cuda or auto (default: the shards')" };
        var threads = new Option<int>("--threads") { Description = "CPU threads (0: all cores)" };
        var command = new Command("merge", "Combine the outputs of run --shard i/n into the files a single run writes.")
        {
            shards, output, model, tokenizer, tasks, backend, threads,
        };
        command.SetAction(parse => Execute(new Request
        {
            Shards = parse.GetValue(shards)!,
            Out = parse.GetValue(output)!,
            Model = parse.GetValue(model),
            Tokenizer = parse.GetValue(tokenizer),
            Tasks = parse.GetValue(tasks),
            Backend = parse.GetValue(backend),
            Threads = parse.GetValue(threads),
        }, CliCancellation.Token));
        return command;
    }

    internal static int Execute(Request r, CancellationToken cancellation)
    {
        if (r.Shards.Count == 0) throw new AtpFastException("merge: give the shard output folders");
        var manifests = new List<(string Dir, RunSettings Settings)>();
        foreach (string dir in r.Shards)
        {
            if (!Directory.Exists(dir)) throw new AtpFastException($"merge: {dir}: folder not found");
            string json = Path.Combine(dir, "run.json");
            if (!File.Exists(json))
                throw new AtpFastException($"merge: {dir}: not a shard output (no run.json; a run without --shard finishes by itself)");
            manifests.Add((dir, RunSettings.Read(json)));
        }
        var first = manifests[0].Settings;
        foreach (var (dir, s) in manifests.Skip(1))
        {
            var differences = first.Differences(s);
            if (differences.Count > 0)
                throw new AtpFastException($"merge: {manifests[0].Dir} and {dir} are parts of different runs: {string.Join("; ", differences)}");
        }
        if (r.Backend is { } b && !Backends.Names.Contains(b.Trim().ToLowerInvariant()))
            throw new AtpFastException($"--backend {b}: unknown backend (expected {string.Join(", ", Backends.Names)})");
        if (r.Threads < 0) throw new AtpFastException($"--threads {r.Threads}: must be 0 (all cores) or more");
        string outDir = Path.GetFullPath(r.Out);
        if (File.Exists(outDir)) throw new AtpFastException($"--out {r.Out}: is a file, not a folder");

        string? modelPath = r.Model ?? (first.ModelPath == RunInputs.Embedded ? null : first.ModelPath);
        string? tasksPath = r.Tasks ?? (first.TasksPath == RunInputs.Embedded ? null : first.TasksPath);
        var inputs = RunInputs.Load(modelPath, r.Tokenizer ?? first.TokenizerPath, tasksPath, first.Length);
        if (inputs.Source.Model.Sha256 != first.ModelSha256)
            throw new AtpFastException($"merge: the model {inputs.ModelPath} (sha256 {inputs.Source.Model.Sha256[..12]}…) is not the shards' model " +
                                       $"(sha256 {first.ModelSha256[..12]}…); pass the right one with --model");
        if (RunSettings.HashPairs(inputs.Pairs) != first.PairsSha256)
            throw new AtpFastException($"merge: the prompt pairs of {inputs.TasksName} are not the shards' pairs; pass the shards' task file with --tasks");
        var settings = first with { Backend = r.Backend ?? first.Backend, Threads = r.Threads, Shard = Shard.Whole };
        var plan = new UnitPlan(settings, new NodeSpace(inputs.Source.Model.Config, settings.SeqLen));

        var units = new UnitResult[plan.Count];
        var missing = new List<int>();
        for (int u = 0; u < plan.Count; u++)
        {
            foreach (var (dir, _) in manifests)
            {
                if (UnitResult.TryRead(Path.Combine(dir, "units"), u, settings.UnitHash, plan) is { } unit)
                {
                    units[u] = unit;
                    break;
                }
            }
            if (units[u] is null) missing.Add(u);
        }
        if (missing.Count > 0)
        {
            int n = first.Shard.Count;
            var owners = missing.GroupBy(u => u % n).Select(g =>
                F($"shard {g.Key}/{n}: unit{(g.Count() == 1 ? "" : "s")} {string.Join(", ", g.Take(8))}{(g.Count() > 8 ? ", …" : "")}"));
            throw new AtpFastException($"merge: {missing.Count} of {plan.Count} work units are missing ({string.Join("; ", owners)}); " +
                                       "finish those shards (their command with --resume) or add their folders");
        }

        using var backend = Backends.Create(inputs.Source.Model.Weights, settings.Backend, settings.Threads);
        AnsiConsole.MarkupLine(Markup.Escape(F($"merging {plan.Count} work units from {manifests.Count} folder{(manifests.Count == 1 ? "" : "s")}: ") +
            F($"{settings.Options.Method.Name()} on {inputs.Source.Description}, {settings.Pairs} pairs × {settings.SeqLen} tokens; verification and bound on {backend.Name}")));
        AttributionResult result;
        try
        {
            result = UnitProgress.Show(progress =>
            {
                progress.Finishing();
                return UnitRunner.Finish(backend, inputs.Pairs, settings, plan, units, progress.Stages, cancellation);
            });
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("interrupted: nothing was written; the shard folders are unchanged");
            return ExitCodes.Interrupted;
        }
        var context = new RunContext(inputs.Source.Description, inputs.Source.Model.Sha256, inputs.TasksName, inputs.AllPairs,
            inputs.PositionLabels(), settings.Backend, plan.Count, Math.Max(first.Shard.Count, manifests.Count), RunContext.CommandLine());
        ResultPrinter.Print(result);
        ResultFiles.Write(result, outDir, context);
        AnsiConsole.MarkupLine(Markup.Escape($"wrote {Path.Combine(outDir, "report.html")}, results.jsonl, results.csv, summary.json"));
        return ExitCodes.Ok;
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
