using System.Runtime.InteropServices;
using System.Text;
using AtpFast.Attribution;
using AtpFast.Onnx;
using AtpFast.Tasks;
using AtpFast.Tokenizers;

namespace AtpFast.Native;

/// <summary>
/// The exported functions of include/atpfast.h (the header states each one's contract; this file implements it).
/// Every export catches everything: a failure becomes a status code and the thread's last-error message, never an
/// exception crossing the boundary. Method names equal the C names so that the hosted route (hostfxr's
/// load_assembly_and_get_function_pointer) finds them by name.
/// </summary>
public static unsafe class Exports
{
    private const int MaxThreads = 1024;

    // ---- Library ----------------------------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "atp_version")]
    public static int atp_version() => NativeVersion.Number;

    [UnmanagedCallersOnly(EntryPoint = "atp_version_string")]
    public static byte* atp_version_string() => Literals.Version;

    [UnmanagedCallersOnly(EntryPoint = "atp_status_name")]
    public static byte* atp_status_name(int status) => Literals.StatusName(status);

    [UnmanagedCallersOnly(EntryPoint = "atp_last_error")]
    public static byte* atp_last_error() => LastError.Pointer;

    [UnmanagedCallersOnly(EntryPoint = "atp_options_init")]
    public static int atp_options_init(AtpOptions* options)
    {
        try
        {
            Need(options, "options");
            CheckSize(options->StructSize, sizeof(AtpOptions), "options", "atp_options");
            var defaults = new AttributionOptions();
            *options = new AtpOptions
            {
                StructSize = (uint)sizeof(AtpOptions),
                Method = (int)defaults.Method,
                Metric = (int)defaults.Metric,
                Direction = (int)defaults.Direction,
                NodeTypes = (uint)defaults.Nodes,
                Positions = (int)defaults.Positions,
                VerifyTop = defaults.VerifyTop,
                Seed = defaults.Seed,
                PairsPerBatch = defaults.PairsPerBatch,
                BoundDraws = defaults.BoundDraws,
                Budget = defaults.Budget,
                BoundAlpha = defaults.BoundAlpha ?? 0,
                InclusionProbability = defaults.InclusionProbability,
            };
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_options_init), e);
        }
    }

    // ---- Contexts ---------------------------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "atp_context_create")]
    public static int atp_context_create(int backend, int threads, nint* result)
    {
        try
        {
            Need(result, "out");
            NativeBackends.CheckAvailable(backend);
            if (threads is < 0 or > MaxThreads)
                throw new NativeException(Status.BadArgument, $"threads is {threads}; expected 0 (all cores) to {MaxThreads}");
            var context = new NativeContext(backend, threads);
            context.Token = Handles.Add(context);
            *result = context.Token;
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_context_create), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_context_destroy")]
    public static int atp_context_destroy(nint context)
    {
        try
        {
            var ctx = Handles.Get<NativeContext>(context, "context");
            lock (ctx.Sync)
            {
                ctx.EnsureAlive("context");
                ctx.Destroy();
            }
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_context_destroy), e);
        }
    }

    // ---- Models -----------------------------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "atp_model_load_file")]
    public static int atp_model_load_file(nint context, byte* path, nint* result)
    {
        try
        {
            var ctx = Handles.Get<NativeContext>(context, "context");
            string file = Utf8(path, "path");
            Need(result, "out");
            if (file.Length == 0) throw new NativeException(Status.BadArgument, "path is empty");
            if (!File.Exists(file))
                throw new NativeException(Status.Io, Directory.Exists(file) ? $"'{file}' is a directory, not an ONNX file" : $"'{file}' does not exist");
            *result = Load(ctx, () => OnnxImporter.Load(file), () => TokenizerNextTo(file));
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_model_load_file), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_model_load_buffer")]
    public static int atp_model_load_buffer(nint context, byte* data, nuint size, nint* result)
    {
        try
        {
            var ctx = Handles.Get<NativeContext>(context, "context");
            Need(data, "data");
            Need(result, "out");
            if (size == 0) throw new NativeException(Status.BadArgument, "size is 0: an ONNX model is never empty");
            if (size > (nuint)Array.MaxLength)
                throw new NativeException(Status.BadArgument, $"size is {size} bytes; models in memory are limited to {Array.MaxLength} bytes (load larger ones from a file)");
            byte[] bytes = new ReadOnlySpan<byte>(data, (int)size).ToArray();
            *result = Load(ctx, () => OnnxImporter.Load(bytes), () => (null, "a model loaded from memory has no tokenizer (load it from a file with its tokenizer beside it)"));
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_model_load_buffer), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_model_load_demo")]
    public static int atp_model_load_demo(nint context, nint* result)
    {
        try
        {
            var ctx = Handles.Get<NativeContext>(context, "context");
            Need(result, "out");
            *result = Load(ctx, () => OnnxImporter.Load(DemoModel.ModelBytes()), () => (DemoModel.Tokenizer(), ""));
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_model_load_demo), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_model_destroy")]
    public static int atp_model_destroy(nint model)
    {
        try
        {
            var m = Handles.Get<NativeModel>(model, "model");
            lock (m.Context.Sync)
            {
                m.EnsureAlive("model");
                if (!m.Context.Release(model)) throw new NativeException(Status.BadHandle, "model was destroyed");
                m.Dispose();
            }
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_model_destroy), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_model_describe")]
    public static int atp_model_describe(nint model, AtpModelInfo* info)
    {
        try
        {
            var m = Handles.Get<NativeModel>(model, "model");
            Need(info, "info");
            CheckSize(info->StructSize, sizeof(AtpModelInfo), "info", "atp_model_info");
            var c = m.Config;
            var value = new AtpModelInfo
            {
                StructSize = (uint)sizeof(AtpModelInfo),
                Family = (int)c.Family,
                Layers = c.Layers,
                Heads = c.Heads,
                KvHeads = c.KvHeads,
                HeadDim = c.HeadDim,
                DModel = c.DModel,
                DMlp = c.DMlp,
                VocabSize = c.VocabSize,
                MaxPositions = c.MaxPositions,
                HasTokenizer = m.Tokenizer is null ? 0 : 1,
                Parameters = m.Model.Weights.ParameterCount,
            };
            Fill(value.Backend, 32, m.Backend.Name);
            Fill(value.Sha256, 72, m.Model.Sha256);
            *info = value;
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_model_describe), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_model_node_count")]
    public static int atp_model_node_count(nint model, nuint seqLen, uint nodeTypes, int positions, nuint* count)
    {
        try
        {
            var m = Handles.Get<NativeModel>(model, "model");
            Need(count, "count");
            var space = Space(m.Config, seqLen);
            var types = Types(nodeTypes, "node_types");
            var mode = Positions(positions, "positions");
            *count = (nuint)space.CountSelected(types, mode); // counted, not listed: Select would materialise every id
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_model_node_count), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_model_node_name")]
    public static int atp_model_node_name(nint model, nuint seqLen, int nodeId, byte* buffer, nuint capacity, nuint* needed)
    {
        try
        {
            var m = Handles.Get<NativeModel>(model, "model");
            return CopyString(NodeName(Space(m.Config, seqLen), nodeId), buffer, capacity, needed, "node name");
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_model_node_name), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_model_node_id")]
    public static int atp_model_node_id(nint model, nuint seqLen, byte* name, int* nodeId)
    {
        try
        {
            var m = Handles.Get<NativeModel>(model, "model");
            string text = Utf8(name, "name");
            Need(nodeId, "node_id");
            var space = Space(m.Config, seqLen);
            if (!Node.TryParse(text, out var node))
                throw new NativeException(Status.BadArgument, $"'{text}' is not a node name (e.g. L0.H1.q@3, L2.mlp.n17@*, L1.resid_pre@0)");
            try
            {
                *nodeId = space.Id(node);
            }
            catch (ArgumentOutOfRangeException)
            {
                throw new NativeException(Status.BadArgument,
                    $"node {text} does not exist in this model ({m.Config.Layers} layers, {m.Config.Heads} heads, {m.Config.KvHeads} kv heads, " +
                    $"{m.Config.DMlp} neurons) at {seqLen} tokens");
            }
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_model_node_id), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_model_tokenize")]
    public static int atp_model_tokenize(nint model, byte* text, int* ids, nuint capacity, nuint* count)
    {
        try
        {
            var m = Handles.Get<NativeModel>(model, "model");
            string value = Utf8(text, "text");
            Need(count, "count");
            if (ids is null && capacity != 0) throw new NativeException(Status.NullArgument, $"ids is NULL but capacity is {capacity}");
            if (m.Tokenizer is null) throw new NativeException(Status.NotAvailable, $"the model has no tokenizer: {m.TokenizerProblem}");
            int[] tokens = m.Tokenizer.Encode(value);
            *count = (nuint)tokens.Length;
            if ((nuint)tokens.Length > capacity)
                throw new NativeException(Status.BufferTooSmall, $"the text is {tokens.Length} tokens but ids holds {capacity}");
            tokens.CopyTo(new Span<int>(ids, tokens.Length));
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_model_tokenize), e);
        }
    }

    // ---- Running a method -------------------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "atp_run")]
    public static int atp_run(nint context, nint model, AtpOptions* options, int* cleanIds, int* noiseIds, nuint pairCount, nuint seqLen,
        int* answerIds, int* wrongIds, nint* result)
    {
        try
        {
            var ctx = Handles.Get<NativeContext>(context, "context");
            var m = Handles.Get<NativeModel>(model, "model");
            if (!ReferenceEquals(m.Context, ctx)) throw new NativeException(Status.BadArgument, "model belongs to another context");
            var settings = Options(options);
            Need(cleanIds, "clean_ids");
            Need(noiseIds, "noise_ids");
            Need(answerIds, "answer_ids");
            Need(wrongIds, "wrong_ids");
            Need(result, "out");
            if (pairCount == 0) throw new NativeException(Status.BadArgument, "n_pairs is 0: give at least one prompt pair");
            if (seqLen == 0) throw new NativeException(Status.BadArgument, "seq_len is 0: prompts need at least one token");
            if (pairCount > int.MaxValue || seqLen > int.MaxValue || (ulong)pairCount * seqLen > (ulong)Array.MaxLength)
                throw new NativeException(Status.BadArgument, $"n_pairs × seq_len = {pairCount} × {seqLen} token ids is more than one run can hold");
            int n = (int)pairCount, t = (int)seqLen;
            var pairs = new PromptPair[n];
            for (int i = 0; i < n; i++)
            {
                pairs[i] = new PromptPair(new ReadOnlySpan<int>(cleanIds + (long)i * t, t).ToArray(),
                    new ReadOnlySpan<int>(noiseIds + (long)i * t, t).ToArray(), answerIds[i], wrongIds[i]);
            }
            lock (ctx.Sync)
            {
                ctx.EnsureAlive("context");
                m.EnsureAlive("model");
                var run = AtpFast.Attribution.Attribution.Run(m.Backend, pairs, settings);
                *result = ctx.Adopt(new NativeResult(ctx, run));
            }
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_run), e);
        }
    }

    // ---- Results ----------------------------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "atp_result_destroy")]
    public static int atp_result_destroy(nint result)
    {
        try
        {
            var r = Handles.Get<NativeResult>(result, "result");
            if (!r.Context.Release(result)) throw new NativeException(Status.BadHandle, "result was destroyed");
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_result_destroy), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_result_describe")]
    public static int atp_result_describe(nint result, AtpResultInfo* info)
    {
        try
        {
            var r = Handles.Get<NativeResult>(result, "result");
            Need(info, "info");
            CheckSize(info->StructSize, sizeof(AtpResultInfo), "info", "atp_result_info");
            var run = r.Result;
            var value = new AtpResultInfo
            {
                StructSize = (uint)sizeof(AtpResultInfo),
                Meaningful = run.Meaningful ? 1 : 0,
                Method = (int)run.Options.Method,
                Metric = (int)run.Options.Metric,
                Direction = (int)run.Options.Direction,
                NodeTypes = (uint)run.Options.Nodes,
                Positions = (int)run.Options.Positions,
                Pairs = run.Pairs,
                SeqLen = run.SeqLen,
                Verified = r.Verified,
                Rows = run.Rows.Count,
                MethodCost = run.MethodCost,
                VerificationCost = run.VerificationCost,
                BoundCost = run.Bound?.CostForwardEquivalents ?? 0,
                TotalCost = run.TotalCost,
                BruteForceCost = run.BruteForceCost,
                BoundTheta = run.Bound?.Theta ?? double.NaN,
                BaselineClean = run.BaselineMetric?.Clean ?? double.NaN,
                BaselineNoise = run.BaselineMetric?.Noise ?? double.NaN,
                ElapsedSeconds = run.Elapsed.TotalSeconds,
            };
            Fill(value.Backend, 32, run.Backend);
            *info = value;
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_result_describe), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_result_row_count")]
    public static int atp_result_row_count(nint result, nuint* rows)
    {
        try
        {
            var r = Handles.Get<NativeResult>(result, "result");
            Need(rows, "rows");
            *rows = (nuint)r.Result.Rows.Count;
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_result_row_count), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_result_read")]
    public static int atp_result_read(nint result, nuint first, nuint capacity, int* nodeIds, int* ranks, double* estimates,
        double* signedEstimates, double* verifiedEffects, nuint* written)
    {
        try
        {
            var r = Handles.Get<NativeResult>(result, "result");
            if (nodeIds is null && ranks is null && estimates is null && signedEstimates is null && verifiedEffects is null)
                throw new NativeException(Status.NullArgument,
                    "node_ids, ranks, estimates, signed_estimates and verified_effects are all NULL: give at least one array");
            var rows = r.Result.Rows;
            if (first > (nuint)rows.Count)
                throw new NativeException(Status.BadArgument, $"first is {first} but the result has {rows.Count} rows");
            int start = (int)first;
            int n = (int)Math.Min((ulong)capacity, (ulong)(rows.Count - start));
            for (int i = 0; i < n; i++)
            {
                var row = rows[start + i];
                if (nodeIds is not null) nodeIds[i] = row.Id;
                if (ranks is not null) ranks[i] = row.Rank;
                if (estimates is not null) estimates[i] = row.Estimate;
                if (signedEstimates is not null) signedEstimates[i] = row.SignedEstimate;
                if (verifiedEffects is not null) verifiedEffects[i] = row.VerifiedEffect ?? double.NaN;
            }
            if (written is not null) *written = (nuint)n;
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_result_read), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_result_node_name")]
    public static int atp_result_node_name(nint result, int nodeId, byte* buffer, nuint capacity, nuint* needed)
    {
        try
        {
            var r = Handles.Get<NativeResult>(result, "result");
            return CopyString(NodeName(r.Space, nodeId), buffer, capacity, needed, "node name");
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_result_node_name), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_result_notes")]
    public static int atp_result_notes(nint result, byte* buffer, nuint capacity, nuint* needed)
    {
        try
        {
            var r = Handles.Get<NativeResult>(result, "result");
            return CopyString(r.Notes, buffer, capacity, needed, "notes text");
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_result_notes), e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "atp_result_write")]
    public static int atp_result_write(nint result, byte* path, int format, nuint top)
    {
        try
        {
            var r = Handles.Get<NativeResult>(result, "result");
            string file = Utf8(path, "path");
            if (file.Length == 0) throw new NativeException(Status.BadArgument, "path is empty");
            if (format is not (0 or 1))
                throw new NativeException(Status.BadArgument, $"format is {format}; expected ATP_FORMAT_JSONL (0) or ATP_FORMAT_CSV (1)");
            int rows = (int)Math.Min((ulong)top, int.MaxValue);
            try
            {
                AttributionTable.WriteAtomically(file, w =>
                {
                    if (format == 0) AttributionTable.WriteJsonl(r.Result.Rows, w, rows);
                    else AttributionTable.WriteCsv(r.Result.Rows, w, rows);
                });
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
            {
                throw new NativeException(Status.Io, $"cannot write '{file}': {e.Message}");
            }
            return LastError.Ok();
        }
        catch (Exception e)
        {
            return LastError.Fail(nameof(atp_result_write), e);
        }
    }

    // ---- Helpers ----------------------------------------------------------------------------------------------------

    private static nint Load(NativeContext ctx, Func<ImportedModel> import, Func<(ITokenizer?, string)> tokenizer)
    {
        lock (ctx.Sync)
        {
            ctx.EnsureAlive("context");
            var imported = import();
            var (tok, problem) = tokenizer();
            if (tok is not null && tok.VocabSize > imported.Config.VocabSize)
            {
                problem = $"the tokenizer found beside the model has {tok.VocabSize} tokens, more than the model's vocabulary ({imported.Config.VocabSize})";
                tok = null;
            }
            var backend = NativeBackends.Create(imported.Weights, ctx.Backend, ctx.Threads);
            return ctx.Adopt(new NativeModel(ctx, imported, backend, tok, problem));
        }
    }

    private static (ITokenizer?, string) TokenizerNextTo(string modelPath)
    {
        string directory = Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
        try
        {
            return (TokenizerLoader.FromDirectory(directory), "");
        }
        catch (TokenizerException e)
        {
            return (null, e.Message);
        }
    }

    private static AttributionOptions Options(AtpOptions* options)
    {
        if (options is null) return new AttributionOptions();
        CheckSize(options->StructSize, sizeof(AtpOptions), "options", "atp_options");
        var o = *options;
        if (o.Method is < 0 or > (int)AttributionMethod.Hierarchical)
            throw new NativeException(Status.BadArgument, $"options.method is {o.Method}; expected ATP_METHOD_EXACT (0) to ATP_METHOD_HIERARCHICAL (7)");
        if (o.Metric is < 0 or > (int)MetricKind.NormalizedLogitDiff)
            throw new NativeException(Status.BadArgument, $"options.metric is {o.Metric}; expected ATP_METRIC_LOGIT_DIFF (0) to ATP_METRIC_NORM_LOGIT_DIFF (4)");
        if (o.Direction is not (0 or 1))
            throw new NativeException(Status.BadArgument, $"options.direction is {o.Direction}; expected ATP_DIRECTION_NOISING (0) or ATP_DIRECTION_DENOISING (1)");
        if (o.VerifyTop < 0) throw new NativeException(Status.BadArgument, $"options.verify_top is {o.VerifyTop}; expected >= 0");
        if (o.PairsPerBatch <= 0) throw new NativeException(Status.BadArgument, $"options.pairs_per_batch is {o.PairsPerBatch}; expected > 0");
        if (o.BoundDraws <= 0) throw new NativeException(Status.BadArgument, $"options.bound_draws is {o.BoundDraws}; expected > 0");
        if (!double.IsFinite(o.Budget) || o.Budget <= 0)
            throw new NativeException(Status.BadArgument, $"options.budget is {o.Budget}; expected a positive number of forward-pass equivalents");
        if (!(o.BoundAlpha == 0 || (o.BoundAlpha > 0 && o.BoundAlpha < 1)))
            throw new NativeException(Status.BadArgument, $"options.bound_alpha is {o.BoundAlpha}; expected 0 (no bound) or a value in (0, 1)");
        if (!(o.InclusionProbability > 0 && o.InclusionProbability < 1))
            throw new NativeException(Status.BadArgument, $"options.inclusion_probability is {o.InclusionProbability}; expected a value in (0, 1)");
        return new AttributionOptions
        {
            Method = (AttributionMethod)o.Method,
            Metric = (MetricKind)o.Metric,
            Direction = (Direction)o.Direction,
            Nodes = Types(o.NodeTypes, "options.node_types"),
            Positions = Positions(o.Positions, "options.positions"),
            VerifyTop = o.VerifyTop,
            Seed = o.Seed,
            PairsPerBatch = o.PairsPerBatch,
            BoundDraws = o.BoundDraws,
            Budget = o.Budget,
            BoundAlpha = o.BoundAlpha == 0 ? null : o.BoundAlpha,
            InclusionProbability = o.InclusionProbability,
        };
    }

    private static NodeTypes Types(uint flags, string argument)
    {
        if (flags == 0 || (flags & ~(uint)NodeTypes.All) != 0)
            throw new NativeException(Status.BadArgument, $"{argument} is 0x{flags:x}; expected a non-empty combination of ATP_NODE_* flags (at most 0xff)");
        return (NodeTypes)flags;
    }

    private static PositionMode Positions(int positions, string argument) => positions is >= 0 and <= 2
        ? (PositionMode)positions
        : throw new NativeException(Status.BadArgument,
            $"{argument} is {positions}; expected ATP_POSITIONS_PER_POSITION (0), ATP_POSITIONS_ALL (1) or ATP_POSITIONS_BOTH (2)");

    private static NodeSpace Space(ModelConfig config, nuint seqLen)
    {
        if (seqLen == 0) throw new NativeException(Status.BadArgument, "seq_len is 0: prompts need at least one token");
        if (seqLen > (nuint)config.MaxSequenceLength)
            throw new NativeException(Status.BadArgument, $"seq_len is {seqLen}; the model accepts at most {config.MaxSequenceLength} tokens");
        try
        {
            return new NodeSpace(config, (int)Math.Min((ulong)seqLen, int.MaxValue - 1));
        }
        catch (NotSupportedException e)
        {
            throw new NativeException(Status.BadArgument, $"seq_len is {seqLen}: {e.Message}");
        }
    }

    private static string NodeName(NodeSpace space, int nodeId) => nodeId >= 0 && nodeId < space.Count
        ? space[nodeId].Name
        : throw new NativeException(Status.BadArgument, $"node_id {nodeId} is outside [0, {space.Count}) for prompts of {space.SeqLen} tokens");

    private static void Need(void* pointer, string argument)
    {
        if (pointer is null) throw new NativeException(Status.NullArgument, $"{argument} is NULL");
    }

    private static void CheckSize(uint given, int expected, string argument, string type)
    {
        if (given != (uint)expected)
            throw new NativeException(Status.BadArgument,
                $"{argument}->struct_size is {given}, but this library's {type} is {expected} bytes (set it to sizeof({type}); " +
                $"a different size means the header and the library are from different versions; library {NativeVersion.Text})");
    }

    private static string Utf8(byte* text, string argument)
    {
        if (text is null) throw new NativeException(Status.NullArgument, $"{argument} is NULL");
        var span = MemoryMarshal.CreateReadOnlySpanFromNullTerminated(text);
        try
        {
            return Strict.GetString(span);
        }
        catch (DecoderFallbackException)
        {
            throw new NativeException(Status.BadArgument, $"{argument} is not valid UTF-8");
        }
    }

    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The string-out convention of the header: *needed = bytes with the NUL; too small a buffer is
    /// ATP_ERR_BUFFER_TOO_SMALL and leaves the buffer untouched.</summary>
    private static int CopyString(string value, byte* buffer, nuint capacity, nuint* needed, string what)
    {
        if (buffer is null && capacity != 0) throw new NativeException(Status.NullArgument, $"buffer is NULL but capacity is {capacity}");
        int length = Encoding.UTF8.GetByteCount(value);
        if (needed is not null) *needed = (nuint)(length + 1);
        if (capacity < (nuint)(length + 1))
            throw new NativeException(Status.BufferTooSmall, $"the {what} needs {length + 1} bytes (NUL included) but capacity is {capacity}");
        Encoding.UTF8.GetBytes(value, new Span<byte>(buffer, length));
        buffer[length] = 0;
        return LastError.Ok();
    }

    private static void Fill(byte* field, int size, string value)
    {
        var target = new Span<byte>(field, size);
        target.Clear();
        int n = Encoding.UTF8.GetBytes(value.AsSpan(0, Math.Min(value.Length, size - 1)), target[..(size - 1)]);
        target[n] = 0;
    }
}

/// <summary>The library's version (atpfast.h's ATP_VERSION_* must match).</summary>
internal static class NativeVersion
{
    public const int Major = 0, Minor = 1, Patch = 0;
    public const int Number = Major * 10000 + Minor * 100 + Patch;
    public const string Text = "0.1.0";
}
