using System.Globalization;
using System.Text.RegularExpressions;

namespace AtpFast;

/// <summary>The kinds of activation the attribution methods score. The order is part of the stable node
/// numbering of <see cref="NodeSpace"/>; do not reorder.</summary>
public enum NodeType
{
    /// <summary>Query vector of one head after rotary (what enters q·k), width HeadDim.</summary>
    Query,
    /// <summary>Key vector of one key/value head after rotary, width HeadDim.</summary>
    Key,
    /// <summary>Value vector of one key/value head, width HeadDim.</summary>
    Value,
    /// <summary>A head's attention output softmax(q·Kᵀ/√d)·V before the output projection ("z"), width HeadDim.</summary>
    HeadOutput,
    /// <summary>One MLP neuron after the nonlinearity (SwiGLU: silu(gate)·up), width 1.</summary>
    Neuron,
    /// <summary>The residual stream entering a block, width d.</summary>
    ResidPre,
    /// <summary>The attention block's output (after the output projection and its bias), width d.</summary>
    AttnOut,
    /// <summary>The MLP's output (after the down projection and its bias), width d.</summary>
    MlpOut,
}

/// <summary>A set of <see cref="NodeType"/>s.</summary>
[Flags]
public enum NodeTypes
{
    /// <summary>No node type.</summary>
    None = 0,
    /// <summary><see cref="NodeType.Query"/>.</summary>
    Query = 1 << NodeType.Query,
    /// <summary><see cref="NodeType.Key"/>.</summary>
    Key = 1 << NodeType.Key,
    /// <summary><see cref="NodeType.Value"/>.</summary>
    Value = 1 << NodeType.Value,
    /// <summary><see cref="NodeType.HeadOutput"/>.</summary>
    HeadOutput = 1 << NodeType.HeadOutput,
    /// <summary><see cref="NodeType.Neuron"/>.</summary>
    Neuron = 1 << NodeType.Neuron,
    /// <summary><see cref="NodeType.ResidPre"/>.</summary>
    ResidPre = 1 << NodeType.ResidPre,
    /// <summary><see cref="NodeType.AttnOut"/>.</summary>
    AttnOut = 1 << NodeType.AttnOut,
    /// <summary><see cref="NodeType.MlpOut"/>.</summary>
    MlpOut = 1 << NodeType.MlpOut,
    /// <summary>The paper's node set plus resid_pre: q, k, v, z, neurons, resid_pre (the default).</summary>
    Default = Query | Key | Value | HeadOutput | Neuron | ResidPre,
    /// <summary>Every node type.</summary>
    All = Default | AttnOut | MlpOut,
}

/// <summary>Which position nodes a selection holds.</summary>
public enum PositionMode
{
    /// <summary>One node per position (the default).</summary>
    PerPosition,
    /// <summary>Only the "all positions" aggregates (<c>@*</c>): the node patched at every position at once.</summary>
    AllPositions,
    /// <summary>Both.</summary>
    Both,
}

/// <summary>
/// One node: an activation at one layer, head/neuron and position. Names are stable and parsed by tools:
/// <c>L{layer}.H{head}.q@{pos}</c> (also <c>.k</c>, <c>.v</c>, <c>.z</c>; for k and v the head is the key/value
/// head), <c>L{layer}.mlp.n{neuron}@{pos}</c>, <c>L{layer}.resid_pre@{pos}</c>, <c>L{layer}.attn_out@{pos}</c>,
/// <c>L{layer}.mlp_out@{pos}</c>, and <c>@*</c> instead of <c>@{pos}</c> for the all-positions aggregate.
/// Layers, heads, neurons and positions count from 0.
/// </summary>
/// <param name="Type">What kind of activation.</param>
/// <param name="Layer">Block index.</param>
/// <param name="Index">Query head (q, z), key/value head (k, v), neuron, or 0 for the d-wide types.</param>
/// <param name="Position">Token position, or <see cref="AllPositions"/>.</param>
public readonly partial record struct Node(NodeType Type, int Layer, int Index, int Position)
{
    /// <summary>The <see cref="Position"/> of an all-positions aggregate (<c>@*</c>).</summary>
    public const int AllPositions = -1;

    /// <summary>True for an <c>@*</c> node.</summary>
    public bool IsAllPositions => Position == AllPositions;

    /// <summary>Short type name used in tables: q, k, v, z, neuron, resid_pre, attn_out, mlp_out.</summary>
    public string TypeName => TypeNames[(int)Type];

    /// <summary>The head index for q/k/v/z nodes (key/value head for k and v), else null.</summary>
    public int? Head => Type <= NodeType.HeadOutput ? Index : null;

    /// <summary>The neuron index for neuron nodes, else null.</summary>
    public int? NeuronIndex => Type == NodeType.Neuron ? Index : null;

    /// <summary>The readable name, e.g. <c>L3.H1.q@7</c>.</summary>
    public string Name
    {
        get
        {
            string pos = IsAllPositions ? "*" : Position.ToString(CultureInfo.InvariantCulture);
            string l = Layer.ToString(CultureInfo.InvariantCulture), i = Index.ToString(CultureInfo.InvariantCulture);
            return Type switch
            {
                <= NodeType.HeadOutput => $"L{l}.H{i}.{TypeName}@{pos}",
                NodeType.Neuron => $"L{l}.mlp.n{i}@{pos}",
                _ => $"L{l}.{TypeName}@{pos}",
            };
        }
    }

    /// <inheritdoc/>
    public override string ToString() => Name;

    private static readonly string[] TypeNames = ["q", "k", "v", "z", "neuron", "resid_pre", "attn_out", "mlp_out"];

    /// <summary>Parses a node type name (q, k, v, z, neuron or neurons, resid_pre, attn_out, mlp_out).</summary>
    /// <exception cref="FormatException">Unknown name.</exception>
    public static NodeType ParseType(string name)
    {
        string n = name.Trim().ToLowerInvariant();
        if (n == "neurons" || n == "mlp") return NodeType.Neuron;
        int i = Array.IndexOf(TypeNames, n);
        return i >= 0 ? (NodeType)i : throw new FormatException(
            $"unknown node type '{name}' (expected one of q, k, v, z, neurons, resid_pre, attn_out, mlp_out)");
    }

    /// <summary>Parses a comma-separated list of node type names into a set.</summary>
    /// <exception cref="FormatException">An unknown or empty name.</exception>
    public static NodeTypes ParseTypes(string list)
    {
        var set = NodeTypes.None;
        foreach (string part in list.Split(','))
        {
            if (part.Trim().Length == 0) throw new FormatException($"empty node type in '{list}'");
            set |= (NodeTypes)(1 << (int)ParseType(part));
        }
        return set;
    }

    /// <summary>The comma-separated names of a set of node types, e.g. "q,k,v,z,neurons,resid_pre".</summary>
    public static string FormatTypes(NodeTypes types) =>
        string.Join(",", Enumerable.Range(0, 8).Where(t => ((int)types & (1 << t)) != 0).Select(t => t == (int)NodeType.Neuron ? "neurons" : TypeNames[t]));

    /// <summary>Parses a node name written by <see cref="Name"/>.</summary>
    /// <exception cref="FormatException">The text is not a node name.</exception>
    public static Node Parse(string name) =>
        TryParse(name, out var node) ? node : throw new FormatException($"'{name}' is not a node name (e.g. L0.H1.q@3, L2.mlp.n17@*, L1.resid_pre@0)");

    /// <summary>Parses a node name; false when the text is not one.</summary>
    public static bool TryParse(string? name, out Node node)
    {
        node = default;
        if (name is null) return false;
        var m = NamePattern().Match(name);
        if (!m.Success) return false;
        int layer = int.Parse(m.Groups["layer"].Value, CultureInfo.InvariantCulture);
        int position = m.Groups["pos"].Value == "*" ? AllPositions : int.Parse(m.Groups["pos"].Value, CultureInfo.InvariantCulture);
        if (m.Groups["head"].Success)
        {
            node = new Node(ParseType(m.Groups["hkind"].Value), layer, int.Parse(m.Groups["head"].Value, CultureInfo.InvariantCulture), position);
        }
        else if (m.Groups["neuron"].Success)
        {
            node = new Node(NodeType.Neuron, layer, int.Parse(m.Groups["neuron"].Value, CultureInfo.InvariantCulture), position);
        }
        else
        {
            node = new Node(ParseType(m.Groups["dkind"].Value), layer, 0, position);
        }
        return true;
    }

    [GeneratedRegex(@"^L(?<layer>\d{1,6})\.(?:H(?<head>\d{1,6})\.(?<hkind>[qkvz])|mlp\.n(?<neuron>\d{1,9})|(?<dkind>resid_pre|attn_out|mlp_out))@(?<pos>\*|\d{1,9})$", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();
}

/// <summary>
/// The stable flat numbering of every node of a model for one sequence length T. Ids are laid out type by type
/// (in <see cref="NodeType"/> order), then layer, then index (head, key/value head or neuron), then position
/// 0..T−1 followed by the <c>@*</c> aggregate: <c>id = TypeOffset(type) + ((layer·Count(type) + index)·(T+1) + pos)</c>
/// with pos = T for <c>@*</c>. Arrays of per-node scores are indexed by these ids.
/// </summary>
public sealed class NodeSpace
{
    private readonly int[] _typeOffset = new int[9];
    private readonly int[] _perLayer = new int[8];
    private readonly int[] _width = new int[8];

    /// <summary>Builds the numbering for <paramref name="config"/> and sequences of <paramref name="seqLen"/> tokens.</summary>
    public NodeSpace(ModelConfig config, int seqLen)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfLessThan(seqLen, 1);
        Config = config;
        SeqLen = seqLen;
        _perLayer[(int)NodeType.Query] = config.Heads;
        _perLayer[(int)NodeType.Key] = config.KvHeads;
        _perLayer[(int)NodeType.Value] = config.KvHeads;
        _perLayer[(int)NodeType.HeadOutput] = config.Heads;
        _perLayer[(int)NodeType.Neuron] = config.DMlp;
        _perLayer[(int)NodeType.ResidPre] = 1;
        _perLayer[(int)NodeType.AttnOut] = 1;
        _perLayer[(int)NodeType.MlpOut] = 1;
        for (int t = 0; t < 8; t++)
        {
            _width[t] = t <= (int)NodeType.HeadOutput ? config.HeadDim : t == (int)NodeType.Neuron ? 1 : config.DModel;
            long next = _typeOffset[t] + (long)config.Layers * _perLayer[t] * (seqLen + 1);
            if (next > int.MaxValue) throw new NotSupportedException($"more than {int.MaxValue} nodes");
            _typeOffset[t + 1] = (int)next;
        }
    }

    /// <summary>The model the ids refer to.</summary>
    public ModelConfig Config { get; }

    /// <summary>Tokens per sequence T.</summary>
    public int SeqLen { get; }

    /// <summary>Number of ids (all types, all positions and the aggregates).</summary>
    public int Count => _typeOffset[8];

    /// <summary>Nodes of <paramref name="type"/> per layer and position: heads, key/value heads, neurons, or 1.</summary>
    public int PerLayer(NodeType type) => _perLayer[(int)type];

    /// <summary>Features of one node of <paramref name="type"/> (HeadDim, 1 or d).</summary>
    public int Width(NodeType type) => _width[(int)type];

    /// <summary>The id of <paramref name="node"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The node does not exist in this model or sequence length.</exception>
    public int Id(Node node)
    {
        int t = (int)node.Type;
        if ((uint)t >= 8 || (uint)node.Layer >= (uint)Config.Layers || (uint)node.Index >= (uint)_perLayer[t] ||
            node.Position < Node.AllPositions || node.Position >= SeqLen)
            throw new ArgumentOutOfRangeException(nameof(node), $"node {node.Name} does not exist in a {Config.Layers}-layer model at {SeqLen} tokens");
        int pos = node.IsAllPositions ? SeqLen : node.Position;
        return _typeOffset[t] + ((node.Layer * _perLayer[t] + node.Index) * (SeqLen + 1) + pos);
    }

    /// <summary>The node with id <paramref name="id"/>.</summary>
    public Node this[int id]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfNegative(id);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(id, Count);
            int t = 0;
            while (id >= _typeOffset[t + 1]) t++;
            int rel = id - _typeOffset[t];
            int pos = rel % (SeqLen + 1);
            int group = rel / (SeqLen + 1);
            return new Node((NodeType)t, group / _perLayer[t], group % _perLayer[t], pos == SeqLen ? Node.AllPositions : pos);
        }
    }

    /// <summary>The ids of every node of <paramref name="types"/> with the positions <paramref name="positions"/>
    /// asks for, in id order.</summary>
    public int[] Select(NodeTypes types, PositionMode positions)
    {
        var ids = new List<int>();
        for (int t = 0; t < 8; t++)
        {
            if (((int)types & (1 << t)) == 0) continue;
            for (int g = 0; g < Config.Layers * _perLayer[t]; g++)
            {
                int first = _typeOffset[t] + g * (SeqLen + 1);
                if (positions != PositionMode.AllPositions)
                    for (int p = 0; p < SeqLen; p++) ids.Add(first + p);
                if (positions != PositionMode.PerPosition) ids.Add(first + SeqLen);
            }
        }
        return [.. ids];
    }

    /// <summary>How many ids <see cref="Select"/> returns for <paramref name="types"/> and <paramref name="positions"/>,
    /// counted without listing them.</summary>
    public int CountSelected(NodeTypes types, PositionMode positions)
    {
        int perGroup = positions switch { PositionMode.PerPosition => SeqLen, PositionMode.AllPositions => 1, _ => SeqLen + 1 };
        long total = 0;
        for (int t = 0; t < 8; t++)
        {
            if (((int)types & (1 << t)) != 0) total += (long)Config.Layers * _perLayer[t] * perGroup;
        }
        return (int)total; // at most Count
    }
}
