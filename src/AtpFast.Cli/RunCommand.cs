using System.CommandLine;
using System.Globalization;
using AtpFast.Attribution;
using AtpFast.Gpu;
using Spectre.Console;

namespace AtpFast.Cli;

/// <summary>
/// <c>atpfast run</c>: one attribution run over a task file, cut into work units (blocks of prompt pairs; for exact
/// patching also slices of nodes) that are written to <c>OUT/units/</c> as they finish. Without <c>--shard</c> the run
/// then combines the units, verifies the top nodes, computes the bound and writes results.jsonl, results.csv,
/// summary.json and report.html (and removes its units). With <c>--shard i/n</c> it computes only its units;
/// <c>atpfast merge</c> finishes. <c>--resume</c> skips the units already written.
/// </summary>
internal static class RunCommand
{
    /// <summary>The flags of <c>run</c>, as given.</summary>
    internal sealed record Request
    {
        public string? Model { get; init; }
        public string? Tokenizer { get; init; }
        public string? Tasks { get; init; }
        public int? Length { get; init; }
        public string Method { get; init; } = "atp*";
        public string Nodes { get; init; } = "q,k,v,z,neurons,resid_pre";
        public string Positions { get; init; } = "per-position";
        public string Metric { get; init; } = "logit-diff";
        public string Direction { get; init; } = "noising";
        public int VerifyTop { get; init; } = 20;
        public double Bound { get; init; } = 0.05;
        public int BoundDraws { get; init; } = 200;
        public double Budget { get; init; } = 100;
        public int Seed { get; init; }
        public string Backend { get; init; } = "auto";
        public int Threads { get; init; }
        public string? Shard { get; init; }
        public bool Resume { get; init; }
        public required string Out { get; init; }
        public int UnitPairs { get; init; } = 64;
        public int SliceNodes { get; init; } = 4096;
        public int PairsPerBatch { get; init; } = 16;
    }

    public static Command Create()
    {
        var d = new Request { Out = "" };
        var model = new Option<string?>("--model") { Description = "ONNX file (default: the embedded IOI model and its held-out pairs)" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "tokenizer file (default: tokenizer.json, encoder.json + vocab.bpe, vocab.json or reference.json next to the model)" };
        var tasks = new Option<string?>("--tasks") { Description = "prompt pairs, JSONL: {\"clean\", \"noise\", \"answer\", \"wrong\"} per line, text or token ids" };
        var length = new Option<int?>("--length") { Description = "use the pairs of this token length (a task file with several lengths needs it)" };
        var method = new Option<string>("--method") { Description = "atp*, atp, atp+qk, atp+gd, exact, subsampling, blocks or hierarchical", DefaultValueFactory = _ => d.Method };
        var nodes = new Option<string>("--nodes") { Description = "node types: q,k,v,z,neurons,resid_pre,attn_out,mlp_out", DefaultValueFactory = _ => d.Nodes };
        var positions = new Option<string>("--positions") { Description = "per-position, all (the @* aggregates) or both", DefaultValueFactory = _ => d.Positions };
        var metric = new Option<string>("--metric") { Description = "logit-diff, logprob, prob, kl or norm-logit-diff", DefaultValueFactory = _ => d.Metric };
        var direction = new Option<string>("--direction") { Description = "noising or denoising", DefaultValueFactory = _ => d.Direction };
        var verifyTop = new Option<int>("--verify-top") { Description = "verify the top K nodes by exact patching (0: none)", DefaultValueFactory = _ => d.VerifyTop };
        var bound = new Option<double>("--bound") { Description = "alpha of the false-negative bound over the unverified nodes (0: no bound)", DefaultValueFactory = _ => d.Bound };
        var boundDraws = new Option<int>("--bound-draws") { Description = "random subsets the bound patches", DefaultValueFactory = _ => d.BoundDraws };
        var budget = new Option<double>("--budget") { Description = "subsampling/blocks/hierarchical: forward-pass equivalents per pair", DefaultValueFactory = _ => d.Budget };
        var seed = new Option<int>("--seed") { Description = "seed of the random subsets", DefaultValueFactory = _ => d.Seed };
        var backend = new Option<string>("--backend") { Description = "cpu, cuda or auto", DefaultValueFactory = _ => d.Backend };
        var threads = new Option<int>("--threads") { Description = "CPU threads (0: all cores)", DefaultValueFactory = _ => d.Threads };
        var shard = new Option<string?>("--shard") { Description = "compute only shard i of n (i/n, from 0); combine the shards with atpfast merge" };
        var resume = new Option<bool>("--resume") { Description = "continue an interrupted run in --out: skip the work units already written" };
        var output = new Option<string>("--out") { Description = "output folder", Required = true };
        var unitPairs = new Option<int>("--unit-pairs") { Description = "prompt pairs per work unit (granularity of sharding and resume)", DefaultValueFactory = _ => d.UnitPairs };
        var sliceNodes = new Option<int>("--slice-nodes") { Description = "exact patching: nodes per work unit", DefaultValueFactory = _ => d.SliceNodes };
        var pairsPerBatch = new Option<int>("--pairs-per-batch") { Description = "prompt pairs run together (lower it for large models)", DefaultValueFactory = _ => d.PairsPerBatch };
        var command = new Command("run", "Attribution of a task file: ranks every node, verifies the top, bounds the rest, writes the tidy table and report.html.")
        {
            model, tokenizer, tasks, length, method, nodes, positions, metric, direction, verifyTop, bound, boundDraws, budget, seed, backend,
            threads, shard, resume, output, unitPairs, sliceNodes, pairsPerBatch,
        };
        command.SetAction(parse => Execute(new Request
        {
            Model = parse.GetValue(model),
            Tokenizer = parse.GetValue(tokenizer),
            Tasks = parse.GetValue(tasks),
            Length = parse.GetValue(length),
            Method = parse.GetValue(method)!,
            Nodes = parse.GetValue(nodes)!,
            Positions = parse.GetValue(positions)!,
            Metric = parse.GetValue(metric)!,
            Direction = parse.GetValue(direction)!,
            VerifyTop = parse.GetValue(verifyTop),
            Bound = parse.GetValue(bound),
            BoundDraws = parse.GetValue(boundDraws),
            Budget = parse.GetValue(budget),
            Seed = parse.GetValue(seed),
            Backend = parse.GetValue(backend)!,
            Threads = parse.GetValue(threads),
            Shard = parse.GetValue(shard),
            Resume = parse.GetValue(resume),
            Out = parse.GetValue(output)!,
            UnitPairs = parse.GetValue(unitPairs),
            SliceNodes = parse.GetValue(sliceNodes),
            PairsPerBatch = parse.GetValue(pairsPerBatch),
        }, CliCancellation.Token));
        return command;
    }

    /// <summary>Parses the attribution flags; each error names its flag.</summary>
    internal static AttributionOptions ParseOptions(Request r)
    {
        AttributionOptions options;
        try
        {
            options = new AttributionOptions
            {
                Method = Flag("--method", () => AttributionMethods.Parse(r.Method)),
                Nodes = Flag("--nodes", () => Node.ParseTypes(r.Nodes)),
                Positions = Flag("--positions", () => ParsePositions(r.Positions)),
                Metric = Flag("--metric", () => MetricNames.ParseMetric(r.Metric)),
                Direction = Flag("--direction", () => MetricNames.ParseDirection(r.Direction)),
                VerifyTop = r.VerifyTop,
                BoundAlpha = r.Bound > 0 ? r.Bound : null,
                BoundDraws = r.BoundDraws,
                Budget = r.Budget,
                Seed = r.Seed,
                PairsPerBatch = r.PairsPerBatch,
            };
        }
        catch (FormatException e)
        {
            throw new AtpFastException(e.Message, e);
        }
        if (r.VerifyTop < 0) throw new AtpFastException($"--verify-top {r.VerifyTop}: must be 0 or more");
        if (!(r.Bound >= 0 && r.Bound < 1)) throw new AtpFastException(F($"--bound {r.Bound}: alpha must be in (0, 1), or 0 for no bound"));
        if (r.BoundDraws < 2) throw new AtpFastException($"--bound-draws {r.BoundDraws}: must be at least 2");
        if (!(r.Budget > 2)) throw new AtpFastException(F($"--budget {r.Budget}: must exceed 2 (the two cached runs per pair)"));
        if (r.PairsPerBatch < 1) throw new AtpFastException($"--pairs-per-batch {r.PairsPerBatch}: must be at least 1");
        if (r.UnitPairs < 1) throw new AtpFastException($"--unit-pairs {r.UnitPairs}: must be at least 1");
        if (r.SliceNodes < 1) throw new AtpFastException($"--slice-nodes {r.SliceNodes}: must be at least 1");
        if (r.Threads < 0) throw new AtpFastException($"--threads {r.Threads}: must be 0 (all cores) or more");
        if (!Backends.Names.Contains(r.Backend.Trim().ToLowerInvariant()))
            throw new AtpFastException($"--backend {r.Backend}: unknown backend (expected {string.Join(", ", Backends.Names)})");
        return options;

        static T Flag<T>(string flag, Func<T> parse)
        {
            try { return parse(); }
            catch (FormatException e) { throw new FormatException($"{flag}: {e.Message}", e); }
        }
    }

    internal static PositionMode ParsePositions(string text) => text.Trim().ToLowerInvariant() switch
    {
        "per-position" or "per" or "each" => PositionMode.PerPosition,
        "all" or "*" or "all-positions" => PositionMode.AllPositions,
        "both" => PositionMode.Both,
        _ => throw new FormatException($"unknown position mode '{text}' (expected per-position, all or both)"),
    };

    /// <summary>Runs <paramref name="r"/>; <paramref name="afterUnit"/> is called after each unit is written (tests
    /// use it to interrupt a run at a known point).</summary>
    internal static int Execute(Request r, CancellationToken cancellation, Action<int>? afterUnit = null)
    {
        // Everything the user gave is checked before the output folder is touched.
        var options = ParseOptions(r);
        var shard = r.Shard is null ? Shard.Whole : Shard.Parse(r.Shard);
        if (string.IsNullOrWhiteSpace(r.Out)) throw new AtpFastException("--out: an output folder is required");
        string outDir = Path.GetFullPath(r.Out);
        if (File.Exists(outDir)) throw new AtpFastException($"--out {r.Out}: is a file, not a folder");
        var inputs = RunInputs.Load(r.Model, r.Tokenizer, r.Tasks, r.Length);
        inputs.Validate(options);
        var config = inputs.Source.Model.Config;
        var settings = new RunSettings
        {
            ModelPath = inputs.ModelPath,
            ModelSha256 = inputs.Source.Model.Sha256,
            TokenizerPath = r.Tokenizer is null ? null : Path.GetFullPath(r.Tokenizer),
            TasksPath = inputs.TasksPath,
            PairsSha256 = RunSettings.HashPairs(inputs.Pairs),
            Pairs = inputs.Pairs.Count,
            SeqLen = inputs.Pairs[0].Length,
            Length = inputs.Length,
            Options = options,
            UnitPairs = r.UnitPairs,
            SliceNodes = r.SliceNodes,
            Backend = r.Backend,
            Threads = r.Threads,
            Shard = shard,
        };
        var plan = new UnitPlan(settings, new NodeSpace(config, settings.SeqLen));
        if (shard.Count > 1 && plan.Kind == MergeKind.Whole)
            throw new AtpFastException($"--shard {shard}: --method {options.Method.Name()} cannot be sharded (its random subsets or refinements depend on effects " +
                                       "averaged over every pair); run it without --shard");
        using var backend = Backends.Create(inputs.Source.Model.Weights, r.Backend, r.Threads);
        var owned = Enumerable.Range(0, plan.Count).Where(shard.Owns).ToArray();

        var output = RunOutput.Open(outDir, settings, r.Resume);
        string unitText = plan.NodeSlices > 1
            ? F($"{plan.Count} work units ({plan.PairBlocks} blocks of ≤{plan.UnitPairs} pairs × {plan.NodeSlices} slices of ≤{plan.SliceNodes:N0} nodes)")
            : F($"{plan.Count} work unit{(plan.Count == 1 ? "" : "s")} of ≤{plan.UnitPairs} pairs");
        AnsiConsole.MarkupLine(Markup.Escape(F($"{options.Method.Name()} on {inputs.Source.Description}: {settings.Pairs} pairs × {settings.SeqLen} tokens, ") +
            F($"{plan.Ids.Length:N0} nodes ({Node.FormatTypes(options.Nodes)}), {options.Metric.Name()}, {options.Direction.Name()}, backend {backend.Name}; {unitText}") +
            (shard.Count > 1 ? F($"; shard {shard} computes {owned.Length}") : "")));
        if (shard.Count > 1 && owned.Length == 0)
            AnsiConsole.MarkupLine(Markup.Escape($"[note] shard {shard} has no work units (the run has {plan.Count}); lower --unit-pairs to spread it over more shards"));

        var done = new UnitResult?[plan.Count];
        int already = 0;
        if (r.Resume)
        {
            foreach (int u in owned)
            {
                done[u] = UnitResult.TryRead(output.UnitsDir, u, settings.UnitHash, plan);
                if (done[u] is not null) already++;
            }
            AnsiConsole.MarkupLine(Markup.Escape($"resuming: {already} of {owned.Length} work units already done"));
        }
        int finished = already;
        AttributionResult? result;
        try
        {
            result = UnitProgress.Show(progress =>
            {
                progress.Begin(owned.Length, already);
                foreach (int u in owned)
                {
                    if (done[u] is not null) continue;
                    cancellation.ThrowIfCancellationRequested();
                    var unit = UnitRunner.Execute(backend, inputs.Pairs, settings, plan, u, progress.Stages, cancellation);
                    unit.Write(output.UnitsDir, settings.UnitHash);
                    done[u] = unit;
                    finished++;
                    progress.UnitDone(u, finished, owned.Length, plan.Work(u), TimeSpan.FromSeconds(unit.Seconds));
                    afterUnit?.Invoke(u);
                }
                if (shard.Count > 1) return null;
                progress.Finishing();
                cancellation.ThrowIfCancellationRequested();
                return UnitRunner.Finish(backend, inputs.Pairs, settings, plan, done!, progress.Stages, cancellation);
            });
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine(F($"interrupted: {finished} of {owned.Length} work units are done and kept in {output.UnitsDir}; ") +
                                    "run the same command with --resume to continue");
            return ExitCodes.Interrupted;
        }
        catch (AtpFastException)
        {
            output.Discard();
            throw;
        }

        if (result is null)
        {
            AnsiConsole.MarkupLine(Markup.Escape(F($"shard {shard}: {owned.Length} work units written to {output.UnitsDir}. ") +
                $"When every shard is done: atpfast merge <the {shard.Count} shard folders> --out <folder>"));
            return ExitCodes.Ok;
        }
        var context = new RunContext(inputs.Source.Description, inputs.Source.Model.Sha256, inputs.TasksName, inputs.AllPairs,
            inputs.PositionLabels(), r.Backend, plan.Count, 1, RunContext.CommandLine());
        ResultPrinter.Print(result);
        ResultFiles.Write(result, outDir, context);
        output.Complete();
        AnsiConsole.MarkupLine(Markup.Escape(F($"{result.Elapsed.TotalSeconds:F1} s; wrote {Path.Combine(outDir, "report.html")}, results.jsonl, results.csv, summary.json")));
        return ExitCodes.Ok;
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// The output folder of a run: run.json (the settings) and units/ (one file per finished work unit) while the run is
/// unfinished or a shard; results.* and report.html when it is done. Bad input found during the run removes what this
/// invocation created; an interruption keeps the finished units for --resume.
/// </summary>
internal sealed class RunOutput
{
    private readonly bool _createdFolder;
    private readonly bool _freshUnits;

    private RunOutput(string directory, bool createdFolder, bool freshUnits)
    {
        Directory = directory;
        _createdFolder = createdFolder;
        _freshUnits = freshUnits;
    }

    public string Directory { get; }
    public string UnitsDir => Path.Combine(Directory, "units");
    public string RunJson => Path.Combine(Directory, "run.json");

    /// <summary>Prepares <paramref name="directory"/>: with <paramref name="resume"/> checks that it holds the same run;
    /// otherwise removes the units and results of an earlier run there. Writes run.json.</summary>
    public static RunOutput Open(string directory, RunSettings settings, bool resume)
    {
        string runJson = Path.Combine(directory, "run.json");
        if (resume)
        {
            if (!File.Exists(runJson))
                throw new AtpFastException($"--resume: {directory} holds no unfinished run (no run.json: the run finished, or never started); run without --resume");
            var earlier = RunSettings.Read(runJson);
            var differences = earlier.Differences(settings);
            if (differences.Count > 0)
                throw new AtpFastException($"--resume: {directory} holds a run with other settings ({string.Join("; ", differences)}); " +
                                           "give the same flags, or run without --resume to start over");
            if (earlier.Shard != settings.Shard)
                throw new AtpFastException($"--resume: {directory} holds shard {earlier.Shard}, not {settings.Shard}");
            AttributionTable.WriteAtomically(runJson, w => w.Write(settings.ToJson()));
            return new RunOutput(directory, createdFolder: false, freshUnits: false);
        }
        bool created = !System.IO.Directory.Exists(directory);
        System.IO.Directory.CreateDirectory(directory);
        string units = Path.Combine(directory, "units");
        if (System.IO.Directory.Exists(units)) System.IO.Directory.Delete(units, recursive: true);
        foreach (string name in ResultFiles.Names)
        {
            string stale = Path.Combine(directory, name);
            if (File.Exists(stale)) File.Delete(stale);
        }
        AttributionTable.WriteAtomically(runJson, w => w.Write(settings.ToJson()));
        return new RunOutput(directory, created, freshUnits: true);
    }

    /// <summary>Removes what this invocation created (bad input found during the run).</summary>
    public void Discard()
    {
        if (_createdFolder)
        {
            if (System.IO.Directory.Exists(Directory)) System.IO.Directory.Delete(Directory, recursive: true);
            return;
        }
        if (!_freshUnits) return;
        if (System.IO.Directory.Exists(UnitsDir)) System.IO.Directory.Delete(UnitsDir, recursive: true);
        if (File.Exists(RunJson)) File.Delete(RunJson);
    }

    /// <summary>A whole run finished: its results are written, its units are no longer needed.</summary>
    public void Complete()
    {
        if (System.IO.Directory.Exists(UnitsDir)) System.IO.Directory.Delete(UnitsDir, recursive: true);
        if (File.Exists(RunJson)) File.Delete(RunJson);
    }
}

/// <summary>Ctrl-C: the first press asks the running command to stop after the current pass (finished units are kept);
/// a second press ends the process at once.</summary>
internal static class CliCancellation
{
    private static readonly CancellationTokenSource Source = new();
    private static int _installed;

    public static CancellationToken Token => Source.Token;

    public static void Install()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 1) return;
        Console.CancelKeyPress += (_, e) =>
        {
            if (Source.IsCancellationRequested) return; // second Ctrl-C: let the process end
            e.Cancel = true;
            Console.Error.WriteLine("stopping after the current pass (finished work units are kept; Ctrl-C again to abort)...");
            Source.Cancel();
        };
    }
}
