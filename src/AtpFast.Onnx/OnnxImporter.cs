using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using AtpFast.Onnx.Proto;

namespace AtpFast.Onnx;

/// <summary>How one slab tensor was filled from the ONNX file.</summary>
/// <param name="SlabTensor">Canonical slab name (e.g. <c>blocks.0.attn.wq</c>).</param>
/// <param name="Initializer">Source initializer name in the ONNX file.</param>
/// <param name="Consumer">Name of the node that consumes it (its scope identifies the weight).</param>
/// <param name="Op">Consumer op type.</param>
/// <param name="Slot">Consumer input slot.</param>
/// <param name="Transposed">The stored layout was [out, in] (or [d, V] for the unembedding) and was transposed.</param>
/// <param name="Detail">Slice of a fused tensor, dtype, tie detection and similar notes.</param>
public sealed record WeightMapping(string SlabTensor, string Initializer, string Consumer, string Op, int Slot, bool Transposed, string Detail);

/// <summary>The result of an import: architecture, weights and how each weight was found.</summary>
public sealed class ImportedModel
{
    internal ImportedModel(ModelWeights weights, IReadOnlyList<WeightMapping> mappings, string sha256, IReadOnlyList<string> notes)
    {
        Weights = weights;
        Mappings = mappings;
        Sha256 = sha256;
        Notes = notes;
    }

    /// <summary>The recovered architecture.</summary>
    public ModelConfig Config => Weights.Config;

    /// <summary>All weights in one fp32 slab.</summary>
    public ModelWeights Weights { get; }

    /// <summary>One entry per slab tensor filled.</summary>
    public IReadOnlyList<WeightMapping> Mappings { get; }

    /// <summary>SHA-256 of the model file bytes (lower-case hex).</summary>
    public string Sha256 { get; }

    /// <summary>How architecture facts were read off the graph (one line each).</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>Human-readable summary: the configuration, parameter counts, evidence and the mapping table.</summary>
    public string Summary()
    {
        var sb = new StringBuilder();
        sb.AppendLine(Config.Describe());
        sb.AppendLine(CultureInfo.InvariantCulture, $"parameters        {Weights.ParameterCount:N0} stored (each tied tensor once)");
        sb.AppendLine();
        sb.AppendLine("evidence:");
        foreach (string n in Notes) sb.AppendLine("  " + n);
        sb.AppendLine();
        sb.AppendLine("weight mapping (slab tensor <- initializer, consumer node, op[slot]):");
        foreach (var m in Mappings)
        {
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"  {m.SlabTensor,-24} <- {m.Initializer} ({m.Consumer}, {m.Op}[{m.Slot}]{(m.Transposed ? ", transposed" : "")}{(m.Detail.Length > 0 ? ", " + m.Detail : "")})");
        }
        return sb.ToString();
    }
}

/// <summary>
/// Imports a decoder-only transformer from an ONNX file exported by <c>torch.onnx.export</c>. The ONNX graph is
/// never executed: each weight is identified by the node that consumes it (its scope name such as
/// <c>/layers.0/self_attn/q_proj/MatMul</c>, op type and input slot), and the architecture facts (heads, norm
/// kind and epsilon, activation, rotary style/dims/base, parallel residual, tied unembedding) are read off the
/// graph's structure and constants.
/// </summary>
public static partial class OnnxImporter
{
    /// <summary>Imports the model at <paramref name="path"/> (external data is looked up next to it).</summary>
    /// <exception cref="OnnxImportException">The file cannot be read or mapped; the message says why.</exception>
    public static ImportedModel Load(string path) => Import(OnnxModelFile.Open(path));

    /// <summary>Imports a model held in memory.</summary>
    /// <param name="modelBytes">The .onnx file's bytes.</param>
    /// <param name="externalDataDirectory">Folder for external-data files (null: the model must not use any).</param>
    public static ImportedModel Load(byte[] modelBytes, string? externalDataDirectory = null) =>
        Import(OnnxModelFile.Parse(modelBytes, externalDataDirectory));

    // Ops a torch export of a GPT-2 / GPT-NeoX / Llama decoder is made of. Anything else is rejected by name,
    // so that an unknown graph fails loudly instead of importing wrong.
    private static readonly HashSet<string> KnownOps = new(StringComparer.Ordinal)
    {
        "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Exp", "Erf", "Tanh", "Sigmoid", "Relu",
        "MatMul", "Gemm", "Softmax", "ReduceMean", "ReduceSum", "LayerNormalization", "Gather", "Shape", "Reshape",
        "Transpose", "Unsqueeze", "Squeeze", "Concat", "Split", "Slice", "Cast", "Constant", "ConstantOfShape", "Range",
        "Expand", "Where", "Equal", "Less", "Greater", "Trilu", "Cos", "Sin", "Identity", "Max", "Min", "Not", "And",
        "Or", "Tile", "Flatten", "CumSum", "Sqrt", "IsNaN", "ScatterND", "GatherElements", "Einsum", "Clip", "Abs",
    };

    [GeneratedRegex(@"^(?:layers|h|layer|blocks)\.(\d+)$")]
    private static partial Regex LayerSegment();

    private enum Role
    {
        Q, K, V, O, FusedQkvGpt2, FusedQkvNeoX, Gate, Up, Down, AttnNorm, MlpNorm, FinalNorm, Unembed,
    }

    private sealed record Use(string Initializer, NodeProto Node, int Slot, bool ThroughTranspose, string[] Scope, int Layer);

    private static ImportedModel Import(OnnxModelFile file)
    {
        var graph = file.Graph;
        foreach (var node in graph.Node)
        {
            if (node.Domain.Length != 0 && node.Domain != "ai.onnx")
                throw new OnnxImportException(
                    $"node '{node.Name}' uses op {node.Domain}.{node.OpType}: graphs optimised for ONNX Runtime (contrib ops) are not " +
                    "supported; export the model with torch.onnx.export without ORT fusion");
            if (!KnownOps.Contains(node.OpType))
                throw new OnnxImportException(
                    $"node '{node.Name}' uses op {node.OpType}, which is not part of a GPT-2 / GPT-NeoX / Llama decoder the importer recognises");
        }
        if (!graph.Input.Any(i => i.Name == "input_ids"))
            throw new OnnxImportException(
                $"the graph has no input named 'input_ids' (inputs: {string.Join(", ", graph.Input.Select(i => i.Name))})");

        var producer = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
            foreach (string o in node.Output) producer[o] = node;

        var initializerNames = new HashSet<string>(graph.Initializer.Select(t => t.Name), StringComparer.Ordinal);
        var uses = new List<Use>();
        foreach (var node in graph.Node)
        {
            if (node.OpType is "Transpose" or "Cast" or "Identity") continue;
            string[] scope = ScopeOf(node);
            int layer = LayerOf(scope);
            for (int slot = 0; slot < node.Input.Count; slot++)
            {
                string input = node.Input[slot];
                bool transposed = false;
                // A weight can reach its consumer through a Transpose (nn.Linear without constant folding) or a
                // Cast (fp16 weights in an fp32 graph).
                while (producer.TryGetValue(input, out var p) && p.OpType is "Transpose" or "Cast" or "Identity" && p.Input.Count == 1)
                {
                    if (p.OpType == "Transpose") transposed = !transposed;
                    input = p.Input[0];
                }
                if (initializerNames.Contains(input)) uses.Add(new Use(input, node, slot, transposed, scope, layer));
            }
        }

        var notes = new List<string>();
        var mappings = new List<WeightMapping>();

        // Token embedding: the Gather whose indices are input_ids.
        var embedUse = uses.FirstOrDefault(u => u.Node.OpType == "Gather" && u.Slot == 0 && u.Node.Input[1] == "input_ids")
            ?? throw new OnnxImportException("no token embedding found: expected a Gather(weight, input_ids)");
        long[] embedDims = file.Dims(embedUse.Initializer);
        if (embedDims.Length != 2) throw new OnnxImportException($"token embedding '{embedUse.Initializer}' has rank {embedDims.Length}, expected 2");
        int vocab = checked((int)embedDims[0]), d = checked((int)embedDims[1]);

        // Positional embedding: another Gather on a [P, d] initializer (indices from a Range / position ids).
        var posUse = uses.FirstOrDefault(u => u.Node.OpType == "Gather" && u.Slot == 0 && u != embedUse && u.Initializer != embedUse.Initializer
                                              && file.Dims(u.Initializer) is { Length: 2 } pd && pd[1] == d);

        // Classify the other weights by their consumer's module name.
        var roles = new Dictionary<(Role, int), List<Use>>();
        foreach (var u in uses)
        {
            if (u.Node.OpType == "Gather") continue;
            Role? role = RoleOf(u);
            if (role is null) continue;
            if (!roles.TryGetValue((role.Value, u.Layer), out var list)) roles[(role.Value, u.Layer)] = list = [];
            list.Add(u);
        }
        int layers = roles.Keys.Where(k => k.Item2 >= 0).Select(k => k.Item2).DefaultIfEmpty(-1).Max() + 1;
        if (layers == 0) throw new OnnxImportException("no transformer blocks found (no nodes under scopes like /layers.0/ or /h.0/)");

        bool fusedGpt2 = roles.ContainsKey((Role.FusedQkvGpt2, 0)), fusedNeoX = roles.ContainsKey((Role.FusedQkvNeoX, 0));
        bool gated = roles.ContainsKey((Role.Gate, 0));

        // Widths from the weights themselves.
        (Use weight, Use? bias) Linear(Role role, int layer)
        {
            if (!roles.TryGetValue((role, layer), out var list))
                throw new OnnxImportException($"layer {layer}: no weight found for {role} (expected a MatMul/Gemm under the usual module name)");
            var w = list.FirstOrDefault(u => u.Node.OpType is "MatMul" or "Gemm" && u.Slot == 1 && file.Dims(u.Initializer).Length == 2)
                ?? throw new OnnxImportException($"layer {layer}: {role} has no MatMul/Gemm weight (found {string.Join(", ", list.Select(u => $"{u.Node.OpType}[{u.Slot}] {u.Initializer}"))})");
            var b = list.FirstOrDefault(u => (u.Node.OpType == "Add" || (u.Node.OpType == "Gemm" && u.Slot == 2)) && file.Dims(u.Initializer).Length == 1);
            return (w, b);
        }

        bool IsTransposed(Use w)
        {
            bool t = w.ThroughTranspose;
            if (w.Node.OpType == "Gemm" && w.Node.Attribute.FirstOrDefault(a => a.Name == "transB") is { I: 1 }) t = !t;
            return t;
        }

        int OutWidth(Use w)
        {
            long[] dims = file.Dims(w.Initializer);
            return checked((int)(IsTransposed(w) ? dims[0] : dims[1]));
        }

        int queryWidth, kvWidth;
        if (fusedGpt2 || fusedNeoX)
        {
            int fused = OutWidth(Linear(fusedGpt2 ? Role.FusedQkvGpt2 : Role.FusedQkvNeoX, 0).weight);
            if (fused % 3 != 0) throw new OnnxImportException($"fused QKV of width {fused} is not divisible by 3");
            queryWidth = kvWidth = fused / 3;
        }
        else
        {
            queryWidth = OutWidth(Linear(Role.Q, 0).weight);
            kvWidth = OutWidth(Linear(Role.K, 0).weight);
        }
        int dMlp = OutWidth(Linear(Role.Up, 0).weight);

        int headDim = FindHeadDim(file, graph, layer0Attention: Linear(fusedGpt2 ? Role.FusedQkvGpt2 : fusedNeoX ? Role.FusedQkvNeoX : Role.Q, 0).weight,
            queryWidth, kvWidth, fusedNeoX, notes);
        int heads = queryWidth / headDim, kvHeads = kvWidth / headDim;

        // Norms.
        var (normKind, eps) = FindNorm(file, graph, roles, notes);
        bool parallel = IsParallelResidual(graph, roles, notes);
        var activation = gated ? MlpActivation.SwiGlu : FindActivation(graph, Linear(Role.Up, 0).weight, notes);
        var (rotary, rotaryDims, rotaryBase) = FindRotary(file, graph, headDim, notes);

        // Unembedding: a MatMul/Gemm weight outside the blocks with V outputs, or the embedding itself.
        var unembedUse = roles.TryGetValue((Role.Unembed, -1), out var ul)
            ? ul.FirstOrDefault(u => u.Node.OpType is "MatMul" or "Gemm" && u.Slot == 1)
            : uses.FirstOrDefault(u => u.Layer < 0 && u.Node.OpType is "MatMul" or "Gemm" && u.Slot == 1 &&
                                       file.Dims(u.Initializer) is { Length: 2 } ud && (ud[0] == vocab || ud[1] == vocab));
        if (unembedUse is null) throw new OnnxImportException("no unembedding found: expected a MatMul/Gemm producing the logits");
        float[] embedValues = file.ReadFloats(embedUse.Initializer);
        float[] unembedValues;
        bool unembedRowsAreVocab;
        {
            long[] udims = file.Dims(unembedUse.Initializer);
            bool t = IsTransposed(unembedUse);
            // MatMul(h, W): W is [d, V] unless it reaches the MatMul through a Transpose of a [V, d] tensor.
            unembedRowsAreVocab = t;
            if ((t ? udims[0] : udims[1]) != vocab || (t ? udims[1] : udims[0]) != d)
                throw new OnnxImportException($"unembedding '{unembedUse.Initializer}' has shape [{string.Join(", ", udims)}], expected [{d}, {vocab}] or its transpose");
            unembedValues = file.ReadFloats(unembedUse.Initializer);
        }
        bool tied = unembedUse.Initializer == embedUse.Initializer || SameAsEmbedding(embedValues, unembedValues, vocab, d, unembedRowsAreVocab);
        notes.Add(tied
            ? $"unembedding tied to the token embedding ({(unembedUse.Initializer == embedUse.Initializer ? "same initializer" : "equal values in '" + unembedUse.Initializer + "'")})"
            : "unembedding untied");

        var family = normKind == NormKind.RmsNorm ? ModelFamily.Llama : rotary != RotaryStyle.None ? ModelFamily.GptNeoX : ModelFamily.Gpt2;
        var config = new ModelConfig(family, vocab, d, layers, heads, kvHeads, headDim, dMlp,
            MaxPositions: posUse is null ? 0 : checked((int)file.Dims(posUse.Initializer)[0]),
            normKind, eps, activation, rotary, rotaryDims, rotaryBase, parallel, tied);
        try { config.Validate(); }
        catch (ArgumentException e) { throw new OnnxImportException("recovered an inconsistent architecture: " + e.Message, e); }

        var weights = new ModelWeights(config);
        void Put(TensorRef target, float[] values, Use source, bool transposed, string detail = "")
        {
            var span = weights.Span(target);
            if (values.Length != span.Length)
                throw new OnnxImportException($"'{source.Initializer}' has {values.Length} values but {target.Name} {target.ShapeText} needs {span.Length}");
            if (transposed) TransposeInto(values, target.Rows, target.Cols, span);
            else values.CopyTo(span);
            mappings.Add(new WeightMapping(target.Name, source.Initializer, source.Node.Name, source.Node.OpType, source.Slot, transposed,
                (detail + " " + DataTypeName(file.DataType(source.Initializer))).Trim()));
        }

        Put(weights.TokenEmbedding, embedValues, embedUse, transposed: false);
        if (posUse is not null) Put(weights.PositionEmbedding, file.ReadFloats(posUse.Initializer), posUse, transposed: false);
        if (!tied) Put(weights.Unembedding, unembedValues, unembedUse, transposed: !unembedRowsAreVocab);
        else mappings.Add(new WeightMapping(weights.Unembedding.Name, unembedUse.Initializer, unembedUse.Node.Name, unembedUse.Node.OpType, unembedUse.Slot,
            !unembedRowsAreVocab, "tied: shares the token embedding"));
        if (roles.TryGetValue((Role.Unembed, -1), out var unembedList) &&
            unembedList.FirstOrDefault(u => u.Node.OpType == "Add" || (u.Node.OpType == "Gemm" && u.Slot == 2)) is { } ub)
        {
            Put(weights.UnembeddingBias, file.ReadFloats(ub.Initializer), ub, transposed: false);
        }

        PutNorm(Role.FinalNorm, -1, weights.FinalNormWeight, weights.FinalNormBias);
        for (int l = 0; l < layers; l++)
        {
            var lw = weights.Layers[l];
            PutNorm(Role.AttnNorm, l, lw.AttnNormWeight, lw.AttnNormBias);
            PutNorm(Role.MlpNorm, l, lw.MlpNormWeight, lw.MlpNormBias);
            if (fusedGpt2 || fusedNeoX) PutFusedQkv(l, fusedNeoX, lw);
            else
            {
                PutLinear(Role.Q, l, lw.Wq, lw.Bq);
                PutLinear(Role.K, l, lw.Wk, lw.Bk);
                PutLinear(Role.V, l, lw.Wv, lw.Bv);
            }
            PutLinear(Role.O, l, lw.Wo, lw.Bo);
            PutLinear(Role.Up, l, lw.WIn, lw.BIn);
            if (gated) PutLinear(Role.Gate, l, lw.WGate, lw.BGate);
            PutLinear(Role.Down, l, lw.WOut, lw.BOut);
        }
        return new ImportedModel(weights, mappings, file.Sha256, notes);

        void PutLinear(Role role, int layer, TensorRef w, TensorRef b)
        {
            var (wu, bu) = Linear(role, layer);
            Put(w, file.ReadFloats(wu.Initializer), wu, IsTransposed(wu));
            if (bu is not null) Put(b, file.ReadFloats(bu.Initializer), bu, transposed: false);
        }

        void PutNorm(Role role, int layer, TensorRef w, TensorRef b)
        {
            if (!roles.TryGetValue((role, layer), out var list))
                throw new OnnxImportException($"{(layer < 0 ? "final norm" : $"layer {layer}: {role}")} weight not found");
            // LayerNormalization: scale in slot 1, bias in slot 2. Decomposed: the weight multiplies, the bias adds.
            var wu = list.FirstOrDefault(u => u.Node.OpType == "LayerNormalization" ? u.Slot == 1 : u.Node.OpType == "Mul")
                ?? throw new OnnxImportException($"{(layer < 0 ? "final norm" : $"layer {layer}: {role}")}: no scale weight (Mul or LayerNormalization slot 1)");
            Put(w, file.ReadFloats(wu.Initializer), wu, transposed: false);
            var bu = list.FirstOrDefault(u => u.Node.OpType == "LayerNormalization" ? u.Slot == 2 : u.Node.OpType == "Add" && file.Dims(u.Initializer) is [_]);
            if (bu is not null && file.Dims(bu.Initializer) is [var n] && n == d) Put(b, file.ReadFloats(bu.Initializer), bu, transposed: false);
        }

        void PutFusedQkv(int layer, bool neoX, LayerWeights lw)
        {
            var (wu, bu) = Linear(neoX ? Role.FusedQkvNeoX : Role.FusedQkvGpt2, layer);
            float[] values = file.ReadFloats(wu.Initializer);
            var inOut = new float[values.Length];
            if (IsTransposed(wu)) TransposeInto(values, d, 3 * queryWidth, inOut); else values.CopyTo(inOut, 0);
            float[]? bias = bu is null ? null : file.ReadFloats(bu.Initializer);
            var targets = new[] { (lw.Wq, lw.Bq), (lw.Wk, lw.Bk), (lw.Wv, lw.Bv) };
            for (int which = 0; which < 3; which++)
            {
                var (wt, bt) = targets[which];
                var ws = weights.Span(wt);
                var bs = weights.Span(bt);
                for (int c = 0; c < queryWidth; c++)
                {
                    // GPT-2 c_attn: [q | k | v]. GPT-NeoX query_key_value: per head [q_h | k_h | v_h].
                    int src = neoX ? (c / headDim) * 3 * headDim + which * headDim + c % headDim : which * queryWidth + c;
                    for (int r = 0; r < d; r++) ws[r * queryWidth + c] = inOut[r * 3 * queryWidth + src];
                    if (bias is not null) bs[c] = bias[src];
                }
                string layout = neoX ? "per-head [q,k,v] interleaving" : "[q | k | v] column blocks";
                mappings.Add(new WeightMapping(wt.Name, wu.Initializer, wu.Node.Name, wu.Node.OpType, wu.Slot, IsTransposed(wu), $"part {which} of fused QKV, {layout}"));
                if (bu is not null) mappings.Add(new WeightMapping(bt.Name, bu.Initializer, bu.Node.Name, bu.Node.OpType, bu.Slot, false, $"part {which} of fused QKV bias"));
            }
        }
    }

    private static string DataTypeName(int type) => (OnnxDataType)type switch
    {
        OnnxDataType.Float => "fp32",
        OnnxDataType.Float16 => "fp16",
        OnnxDataType.BFloat16 => "bf16",
        OnnxDataType.Double => "fp64",
        _ => $"type {type}",
    };

    private static string[] ScopeOf(NodeProto node)
    {
        var parts = node.Name.Split('/', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length <= 1 ? [] : parts[..^1];
    }

    private static int LayerOf(string[] scope)
    {
        foreach (string s in scope)
        {
            var m = LayerSegment().Match(s);
            if (m.Success) return int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        }
        return -1;
    }

    private static Role? RoleOf(Use u)
    {
        if (u.Scope.Length == 0) return null;
        string module = u.Scope[^1];
        string parent = u.Scope.Length >= 2 ? u.Scope[^2] : "";
        bool inAttention = parent is "attn" or "self_attn" or "attention" or "self_attention";
        if (u.Layer < 0)
        {
            return module switch
            {
                "lm_head" or "embed_out" or "unembed" => Role.Unembed,
                "norm" or "ln_f" or "final_layer_norm" or "final_norm" => Role.FinalNorm,
                _ => null,
            };
        }
        return module switch
        {
            "q_proj" or "query" or "wq" => Role.Q,
            "k_proj" or "key" or "wk" => Role.K,
            "v_proj" or "value" or "wv" => Role.V,
            "o_proj" or "out_proj" or "wo" => Role.O,
            "dense" when inAttention => Role.O,
            "c_proj" when inAttention => Role.O,
            "c_attn" => Role.FusedQkvGpt2,
            "query_key_value" => Role.FusedQkvNeoX,
            "gate_proj" or "w1" => Role.Gate,
            "up_proj" or "w3" or "c_fc" or "dense_h_to_4h" or "fc_in" or "fc1" => Role.Up,
            "down_proj" or "w2" or "dense_4h_to_h" or "fc_out" or "fc2" => Role.Down,
            "c_proj" => Role.Down,
            "input_layernorm" or "ln_1" or "attention_norm" or "ln1" => Role.AttnNorm,
            "post_attention_layernorm" or "ln_2" or "ffn_norm" or "ln2" => Role.MlpNorm,
            _ => null,
        };
    }

    private static void TransposeInto(float[] source, int rows, int cols, Span<float> target)
    {
        // source is [cols, rows] (stored [out, in]); target is [rows, cols].
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                target[r * cols + c] = source[c * rows + r];
    }

    private static bool SameAsEmbedding(float[] embed, float[] unembed, int vocab, int d, bool rowsAreVocab)
    {
        if (embed.Length != unembed.Length) return false;
        for (int v = 0; v < vocab; v++)
            for (int k = 0; k < d; k++)
                if (embed[v * d + k] != (rowsAreVocab ? unembed[v * d + k] : unembed[k * vocab + v])) return false;
        return true;
    }

    /// <summary>Head width from the Reshape that splits the first attention projection into heads:
    /// its target shape ends in (heads, head_dim) constants (directly or through a Concat).</summary>
    private static int FindHeadDim(OnnxModelFile file, GraphProto graph, Use layer0Attention, int queryWidth, int kvWidth, bool fusedNeoX, List<string> notes)
    {
        string prefix = "/" + string.Join('/', layer0Attention.Scope[..^1]) + "/";
        var producer = graph.Node.SelectMany(n => n.Output.Select(o => (o, n))).ToDictionary(p => p.o, p => p.n, StringComparer.Ordinal);
        var candidates = new List<(long heads, long dim)>();
        foreach (var node in graph.Node.Where(n => n.OpType == "Reshape" && n.Name.StartsWith(prefix, StringComparison.Ordinal) && n.Input.Count == 2))
        {
            long[]? shape = ConstantShape(file, producer, node.Input[1]);
            if (shape is { Length: 4 } && shape[2] > 0 && shape[3] > 0) candidates.Add((shape[2], shape[3]));
        }
        foreach (var (h, dim) in candidates)
        {
            long width = h * dim;
            if (fusedNeoX && dim % 3 == 0 && width == 3L * queryWidth)
            {
                notes.Add($"head split: Reshape to [.., {h}, {dim}] in {prefix} (fused per-head q,k,v of {dim / 3} each)");
                return (int)(dim / 3);
            }
            if (width == queryWidth || width == kvWidth)
            {
                notes.Add($"head split: Reshape to [.., {h}, {dim}] in {prefix}");
                return (int)dim;
            }
        }
        throw new OnnxImportException(
            $"could not find the head count: expected a Reshape to [batch, seq, heads, head_dim] with constant heads and head_dim under {prefix}");
    }

    private static long[]? ConstantShape(OnnxModelFile file, Dictionary<string, NodeProto> producer, string name)
    {
        if (file.IsConstant(name)) return file.ReadInts(name);
        if (!producer.TryGetValue(name, out var p) || p.OpType != "Concat") return null;
        var result = new List<long>();
        foreach (string input in p.Input)
        {
            if (file.IsConstant(input)) result.AddRange(file.ReadInts(input));
            else result.Add(-1); // a dynamic dimension (batch or sequence)
        }
        return [.. result];
    }

    private static (NormKind, float) FindNorm(OnnxModelFile file, GraphProto graph, Dictionary<(Role, int), List<Use>> roles, List<string> notes)
    {
        if (!roles.TryGetValue((Role.AttnNorm, 0), out var list) || list.Count == 0)
            throw new OnnxImportException("layer 0: no attention norm found (expected input_layernorm / ln_1)");
        var use = list[0];
        if (use.Node.OpType == "LayerNormalization")
        {
            float e = use.Node.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
            notes.Add($"norm: LayerNormalization op, epsilon {e:G}");
            return (NormKind.LayerNorm, e);
        }
        string prefix = "/" + string.Join('/', use.Scope) + "/";
        var nodes = graph.Node.Where(n => n.Name.StartsWith(prefix, StringComparison.Ordinal)).ToList();
        bool centred = nodes.Any(n => n.OpType == "Sub");
        float eps = float.NaN;
        foreach (var add in nodes.Where(n => n.OpType == "Add"))
        {
            foreach (string input in add.Input)
            {
                if (file.IsConstant(input) && file.Dims(input).Length == 0 && file.DataType(input) is 1 or 10 or 11 or 16)
                {
                    eps = file.ReadFloats(input)[0];
                    break;
                }
            }
            if (!float.IsNaN(eps)) break;
        }
        if (float.IsNaN(eps) || eps <= 0)
            throw new OnnxImportException($"could not read the norm epsilon: expected an Add of a scalar constant under {prefix}");
        var kind = centred ? NormKind.LayerNorm : NormKind.RmsNorm;
        notes.Add($"norm: decomposed {(centred ? "LayerNorm (mean subtracted)" : "RMSNorm (no mean subtraction)")} under {prefix}, epsilon {eps:G}");
        return (kind, eps);
    }

    private static bool IsParallelResidual(GraphProto graph, Dictionary<(Role, int), List<Use>> roles, List<string> notes)
    {
        // Parallel residual: both norms of a block read the same residual-stream tensor.
        static HashSet<string> ExternalInputs(GraphProto graph, Use use)
        {
            if (use.Node.OpType == "LayerNormalization") return [use.Node.Input[0]];
            string prefix = "/" + string.Join('/', use.Scope) + "/";
            var inside = graph.Node.Where(n => n.Name.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            var produced = inside.SelectMany(n => n.Output).ToHashSet(StringComparer.Ordinal);
            return inside.SelectMany(n => n.Input).Where(i => !produced.Contains(i) && !i.Contains("Constant", StringComparison.Ordinal)
                                                             && !i.Contains("weight", StringComparison.Ordinal) && !i.Contains("bias", StringComparison.Ordinal))
                .ToHashSet(StringComparer.Ordinal);
        }
        if (!roles.TryGetValue((Role.AttnNorm, 0), out var a) || !roles.TryGetValue((Role.MlpNorm, 0), out var m))
            throw new OnnxImportException("layer 0: expected two norms (before attention and before the MLP)");
        bool parallel = ExternalInputs(graph, a[0]).SetEquals(ExternalInputs(graph, m[0]));
        notes.Add(parallel ? "residual: parallel (both norms of a block read the same tensor)" : "residual: sequential");
        return parallel;
    }

    private static MlpActivation FindActivation(GraphProto graph, Use upWeight, List<string> notes)
    {
        string prefix = "/" + string.Join('/', upWeight.Scope[..^1]) + "/";
        var ops = graph.Node.Where(n => n.Name.StartsWith(prefix, StringComparison.Ordinal)).Select(n => n.OpType).ToHashSet(StringComparer.Ordinal);
        MlpActivation act = ops.Contains("Erf") ? MlpActivation.GeluErf
            : ops.Contains("Tanh") ? MlpActivation.GeluTanh
            : ops.Contains("Relu") ? MlpActivation.Relu
            : throw new OnnxImportException($"could not identify the MLP activation under {prefix} (expected Erf, Tanh or Relu)");
        notes.Add($"mlp activation: {act} (ops under {prefix})");
        return act;
    }

    private static (RotaryStyle, int, float) FindRotary(OnnxModelFile file, GraphProto graph, int headDim, List<string> notes)
    {
        var cos = graph.Node.FirstOrDefault(n => n.OpType == "Cos");
        if (cos is null)
        {
            notes.Add("rotary: none (no Cos/Sin in the graph)");
            return (RotaryStyle.None, 0, 0f);
        }
        var producer = graph.Node.SelectMany(n => n.Output.Select(o => (o, n))).ToDictionary(p => p.o, p => p.n, StringComparer.Ordinal);
        float[]? invFreq = null;
        var frontier = new Queue<(string, int)>();
        frontier.Enqueue((cos.Input[0], 0));
        while (frontier.Count > 0 && invFreq is null)
        {
            var (name, depth) = frontier.Dequeue();
            if (file.IsConstant(name) && file.DataType(name) is 1 or 10 or 11 or 16)
            {
                float[] v = file.ReadFloats(name);
                if (v.Length >= 1 && v[0] == 1f) invFreq = v;
                continue;
            }
            if (depth > 6 || !producer.TryGetValue(name, out var p)) continue;
            foreach (string i in p.Input) frontier.Enqueue((i, depth + 1));
        }
        if (invFreq is null)
            throw new OnnxImportException($"rotary embedding found (node '{cos.Name}') but no inverse-frequency constant feeding it");
        // cat(freqs, freqs) is applied after the Cos in HF exports, so the constant holds R/2 frequencies.
        int rotaryDims = 2 * invFreq.Length;
        float rotaryBase = invFreq.Length > 1 ? MathF.Pow(invFreq[1], -rotaryDims / 2f) : 10000f;
        // Round the base recovered from fp32 frequencies to 3 significant digits (10000, 500000, ...).
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(rotaryBase)) - 2);
        rotaryBase = (float)(Math.Round(rotaryBase / magnitude) * magnitude);
        // Interleaved rotary slices even/odd dims with step 2; half-split rotates halves (Neg + Concat).
        bool interleaved = graph.Node.Any(n => n.OpType == "Slice" && n.Input.Count >= 5 && file.IsConstant(n.Input[4]) && file.ReadInts(n.Input[4]) is [2]);
        var style = interleaved ? RotaryStyle.Interleaved : RotaryStyle.HalfSplit;
        if (rotaryDims > headDim)
            throw new OnnxImportException($"rotary frequencies cover {rotaryDims} dims but a head has only {headDim}");
        notes.Add($"rotary: {style}, {rotaryDims} of {headDim} dims, base {rotaryBase} (from {invFreq.Length} inverse frequencies)");
        return (style, rotaryDims, rotaryBase);
    }
}
