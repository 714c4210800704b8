using System.CommandLine;
using System.Globalization;
using AtpFast.Attribution;
using AtpFast.Cpu;
using AtpFast.Onnx;
using AtpFast.Tasks;
using Spectre.Console;

namespace AtpFast.Cli;

/// <summary>
/// <c>atpfast selftest</c>: backend parity. Every backend in <see cref="Candidates"/> is checked against the CPU fp64
/// reference on the embedded model, the test models of the repository (tests/models) and stories260K when they are
/// found: logits of a forward pass, AtP scores (Δactivation · gradient, so every activation gradient), AtP* scores (QK
/// fix and GradDrop) and exact-patching effects of sampled nodes. A backend that cannot be created here (no CUDA device,
/// say) is reported as skipped with the reason. Exit code 1 when a check fails.
/// </summary>
internal static class SelftestCommand
{
    /// <summary>The backends under test. Adding one is one line: a name for <c>--backend</c> and how to create it
    /// (throwing <see cref="AtpFastException"/> with the reason when it cannot run here).</summary>
    internal static readonly List<(string Name, Func<ModelWeights, IBackend> Create)> Candidates =
    [
        ("cpu", w => Gpu.Backends.Create(w, "cpu")),
        ("ilgpu-cpu", w => Gpu.GpuBackend.CreateCpuAccelerator(w)),
        ("cuda", w => Gpu.Backends.Create(w, "cuda")),
        ("cuda-tf32", w => Gpu.Backends.Create(w, "cuda", precision: Precision.Tf32)),
        ("cuda-bf16", w => Gpu.Backends.Create(w, "cuda", precision: Precision.Bf16)),
    ];

    /// <summary>Tolerances of a fp32 backend against the fp64 reference, by check, relative to the scale of the compared
    /// table (max |Δ| ≤ tol·max |value|; exact patching compares patched metrics, whose scale is the metric's).</summary>
    internal static readonly Dictionary<string, double> Tolerances = new()
    {
        ["logits"] = 1e-4,
        ["AtP scores (gradients)"] = 1e-4,
        ["AtP* scores"] = 1e-4,
        ["exact patching"] = 1e-4,
    };

    /// <summary>How much looser the tolerances are for the tensor-core precisions (inputs rounded to 10 or 7 mantissa
    /// bits before every matrix product, fp32 accumulation). These are estimates, not yet calibrated on a device: a
    /// product's relative error grows with the input unit roundoff (2⁻¹¹ for TF32, 2⁻⁸ for BF16, against 2⁻²⁴), but
    /// largely averages out over a sum of K terms, so about 1e-2 and 5e-2 of a table's scale are expected. The
    /// CPU accelerator cannot calibrate them: with 32-lane warps (128 threads a group) its selftest did not finish in
    /// 17 minutes on 2 cores.</summary>
    internal static double PrecisionFactor(Precision precision) => precision switch
    {
        Precision.Tf32 => 100,
        Precision.Bf16 => 500,
        _ => 1,
    };

    internal sealed record Check(string Model, string Backend, string Name, double Error, double Tolerance, string Status, string Detail)
    {
        public bool Failed => Status == "FAIL";
    }

    internal sealed record TestModel(string Name, ModelWeights Weights, IReadOnlyList<PromptPair> Pairs);

    public static Command Create()
    {
        var backend = new Option<string>("--backend") { Description = "backend to check: " + string.Join(", ", Candidates.Select(c => c.Name)) + ", or all", DefaultValueFactory = _ => "all" };
        var models = new Option<string[]>("--model") { Description = "additional ONNX files to check (repeatable)", AllowMultipleArgumentsPerToken = true };
        var command = new Command("selftest", "Backend parity checks against the CPU fp64 reference (logits, gradients via AtP scores, AtP*, exact patching).")
        {
            backend, models,
        };
        command.SetAction(parse => Execute(parse.GetValue(backend)!, parse.GetValue(models) ?? []));
        return command;
    }

    /// <param name="backendName">A name from <paramref name="candidates"/>, or "all".</param>
    /// <param name="extraModels">ONNX files checked besides the discovered ones.</param>
    /// <param name="candidates">The backends (default <see cref="Candidates"/>).</param>
    /// <param name="models">The models (default: <see cref="DiscoverModels"/>).</param>
    internal static int Execute(string backendName, IReadOnlyList<string> extraModels,
        IReadOnlyList<(string Name, Func<ModelWeights, IBackend> Create)>? candidates = null, IReadOnlyList<TestModel>? models = null)
    {
        candidates ??= Candidates;
        string wanted = backendName.Trim();
        var selected = wanted.Equals("all", StringComparison.OrdinalIgnoreCase) ? candidates
            : candidates.Where(c => c.Name.Equals(wanted, StringComparison.OrdinalIgnoreCase)).ToList();
        if (selected.Count == 0)
            throw new AtpFastException($"--backend {backendName}: unknown (expected {string.Join(", ", candidates.Select(c => c.Name))} or all)");
        foreach (string path in extraModels)
        {
            if (!File.Exists(path)) throw new AtpFastException($"--model {path}: model file not found");
        }
        var checks = Run(selected, models ?? DiscoverModels(extraModels));
        var table = new Table().AddColumns("model", "backend", "check", "max rel. error", "tolerance", "result");
        foreach (var c in checks)
        {
            string status = c.Status switch { "pass" => "[green]pass[/]", "FAIL" => "[red]FAIL[/]", _ => "[yellow]" + Markup.Escape(c.Status) + "[/]" };
            table.AddRow(Markup.Escape(c.Model), Markup.Escape(c.Backend), Markup.Escape(c.Name),
                double.IsNaN(c.Error) ? "" : c.Error.ToString("E2", CultureInfo.InvariantCulture),
                double.IsNaN(c.Tolerance) ? "" : c.Tolerance.ToString("E0", CultureInfo.InvariantCulture), status);
        }
        AnsiConsole.Write(table);
        foreach (var c in checks.Where(c => c.Detail.Length > 0 && c.Status != "pass"))
            AnsiConsole.MarkupLine(Markup.Escape($"{c.Backend} on {c.Model}, {c.Name}: {c.Detail}"));
        int failed = checks.Count(c => c.Failed), passed = checks.Count(c => c.Status == "pass");
        int skipped = checks.Count(c => c.Status.StartsWith("skipped", StringComparison.Ordinal));
        AnsiConsole.MarkupLine(Markup.Escape($"{passed} passed, {failed} failed, {skipped} skipped (reference: CPU fp64)"));
        return failed > 0 ? ExitCodes.InternalError : ExitCodes.Ok;
    }

    /// <summary>The embedded model with its pairs, the repository's test models and stories260K when found (walking up
    /// from the working folder and from the tool), and <paramref name="extra"/>; random pairs for models without tasks.</summary>
    internal static List<TestModel> DiscoverModels(IReadOnlyList<string> extra)
    {
        var models = new List<TestModel> { EmbeddedModel() };
        var paths = new List<string>();
        if (FindRepositoryRoot() is { } root)
        {
            string testModels = Path.Combine(root, "tests", "models");
            if (Directory.Exists(testModels))
                paths.AddRange(Directory.GetDirectories(testModels).Order(StringComparer.Ordinal).Select(d => Path.Combine(d, "model.onnx")).Where(File.Exists));
            string stories = Path.GetFullPath(Path.Combine(root, "..", "shared", "models", "stories260K", "model.onnx"));
            if (File.Exists(stories)) paths.Add(stories);
        }
        paths.AddRange(extra.Select(Path.GetFullPath));
        foreach (string path in paths.Distinct())
        {
            var model = OnnxImporter.Load(path);
            string name = Path.GetFileName(Path.GetDirectoryName(path)) is { Length: > 0 } dir && Path.GetFileName(path) == "model.onnx" ? dir : Path.GetFileName(path);
            models.Add(new TestModel(name, model.Weights, RandomPairs(model.Config, seqLen: 8, count: 3, seed: 7)));
        }
        return models;
    }

    /// <summary>The embedded model with four of its held-out pairs (the first of <see cref="DiscoverModels"/>).</summary>
    internal static TestModel EmbeddedModel()
    {
        var embedded = ModelSource.Embedded();
        var pairs = DemoModel.TaskPairs(embedded.Tokenizer, embedded.Model.Config.VocabSize, "embedded tasks");
        return new TestModel("embedded ioi-gpt2", embedded.Model.Weights, [.. pairs.Take(4)]);
    }

    private static string? FindRepositoryRoot()
    {
        foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "AtpFast.sln"))) return dir.FullName;
            }
        }
        return null;
    }

    /// <summary>Pairs of random tokens whose noise prompts differ from the clean ones at two positions.</summary>
    internal static PromptPair[] RandomPairs(ModelConfig config, int seqLen, int count, int seed)
    {
        var rng = new Random(seed);
        int t = config.MaxPositions > 0 ? Math.Min(seqLen, config.MaxPositions) : seqLen;
        var pairs = new PromptPair[count];
        for (int p = 0; p < count; p++)
        {
            var clean = Enumerable.Range(0, t).Select(_ => rng.Next(config.VocabSize)).ToArray();
            var noise = (int[])clean.Clone();
            noise[Math.Min(1, t - 1)] = rng.Next(config.VocabSize);
            noise[t / 2] = rng.Next(config.VocabSize);
            int answer = rng.Next(config.VocabSize), wrong = (answer + 1 + rng.Next(config.VocabSize - 1)) % config.VocabSize;
            pairs[p] = new PromptPair(clean, noise, answer, wrong);
        }
        return pairs;
    }

    internal static List<Check> Run(IReadOnlyList<(string Name, Func<ModelWeights, IBackend> Create)> backends, IReadOnlyList<TestModel> models)
    {
        var checks = new List<Check>();
        foreach (var model in models)
        {
            Reference? reference = null;
            foreach (var (name, create) in backends)
            {
                IBackend backend;
                try
                {
                    backend = create(model.Weights);
                }
                catch (AtpFastException e)
                {
                    checks.Add(new Check(model.Name, name, "(all)", double.NaN, double.NaN, "skipped", e.Message));
                    continue;
                }
                using (backend)
                {
                    reference ??= Reference.Compute(model);
                    var actual = Reference.Compute(model, backend, reference.Patched);
                    double factor = PrecisionFactor(backend.Precision);
                    checks.Add(Compare(model.Name, name, "logits", reference.Logits, actual.Logits, factor));
                    checks.Add(Compare(model.Name, name, "AtP scores (gradients)", reference.Atp, actual.Atp, factor));
                    checks.Add(Compare(model.Name, name, "AtP* scores", reference.AtpStar, actual.AtpStar, factor));
                    checks.Add(Compare(model.Name, name, "exact patching", reference.Effects, actual.Effects, factor));
                }
            }
        }
        return checks;
    }

    private static Check Compare(string model, string backend, string name, double[] expected, double[] actual, double factor)
    {
        double scale = expected.Select(Math.Abs).DefaultIfEmpty(0).Max();
        double worst = 0;
        int at = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs(actual[i] - expected[i]);
            if (!(d <= worst)) { worst = d; at = i; } // NaN counts as worst
        }
        double error = scale > 0 ? worst / scale : worst;
        double tol = Tolerances[name] * factor;
        bool pass = error <= tol;
        string detail = pass ? "" : string.Create(CultureInfo.InvariantCulture,
            $"value {at}: expected {expected[at]:G9}, got {actual[at]:G9} (scale {scale:G4})");
        return new Check(model, backend, name, error, tol, pass ? "pass" : "FAIL", detail);
    }

    /// <summary>The numbers compared for one model on one backend.</summary>
    private sealed record Reference(double[] Logits, double[] Atp, double[] AtpStar, double[] Effects, Node[] Patched)
    {
        public static Reference Compute(TestModel model)
        {
            using var fp64 = new CpuBackend(model.Weights, Precision.Float64);
            var space = new NodeSpace(model.Weights.Config, model.Pairs[0].Length);
            var rng = new Random(11);
            var ids = space.Select(NodeTypes.All, PositionMode.PerPosition);
            var nodes = Enumerable.Range(0, 48).Select(_ => space[ids[rng.Next(ids.Length)]]).ToArray();
            return Compute(model, fp64, nodes);
        }

        public static Reference Compute(TestModel model, IBackend backend, Node[] nodes)
        {
            var config = model.Weights.Config;
            int t = model.Pairs[0].Length, batch = model.Pairs.Count;
            var ids = model.Pairs.SelectMany(p => p.Clean).ToArray();
            var logits = new float[batch * t * config.VocabSize];
            backend.Forward(ids, batch, t, logits);
            double[] Scores(AttributionMethod method, bool signed)
            {
                var result = AtpFast.Attribution.Attribution.Run(backend, model.Pairs, new AttributionOptions { Method = method, Nodes = NodeTypes.All, Positions = PositionMode.Both });
                return [.. result.Rows.OrderBy(r => r.Id).Select(r => signed ? r.SignedEstimate : r.Estimate)];
            }
            // Exactly patched metrics (not effects: an effect is a difference of two metrics, so its rounding is the
            // metric's, and the metric's scale is the one to compare against).
            using var clean = backend.Run(ids, batch, t);
            using var noise = backend.Run(model.Pairs.SelectMany(p => p.Noise).ToArray(), batch, t);
            var targets = new MetricTargets(MetricKind.LogitDiff, [.. model.Pairs.Select(p => p.Answer)], [.. model.Pairs.Select(p => p.Wrong)]);
            var runs = nodes.SelectMany((_, i) => Enumerable.Range(0, batch).Select(e => new PatchRun(e, nodes.AsMemory(i, 1)))).ToArray();
            var effects = new double[runs.Length];
            backend.PatchedMetric(clean, noise, runs, targets, effects);
            return new Reference([.. logits.Select(v => (double)v)], Scores(AttributionMethod.Atp, signed: true),
                Scores(config.Layers >= 2 ? AttributionMethod.AtpStar : AttributionMethod.AtpQk, signed: false), effects, nodes);
        }
    }
}
