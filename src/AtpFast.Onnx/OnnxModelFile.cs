using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using AtpFast.Onnx.Proto;
using Google.Protobuf;

namespace AtpFast.Onnx;

/// <summary>Error while reading or mapping an ONNX file; the message names the node, op, tensor or file
/// and what was expected.</summary>
public sealed class OnnxImportException : AtpFastException
{
    public OnnxImportException() { }
    public OnnxImportException(string message) : base(message) { }
    public OnnxImportException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>ONNX element types the reader converts (TensorProto.DataType numbers).</summary>
internal enum OnnxDataType
{
    Float = 1,
    Int32 = 6,
    Int64 = 7,
    Float16 = 10,
    Double = 11,
    BFloat16 = 16,
}

/// <summary>
/// A parsed ONNX model: the graph, its initializers and <c>Constant</c> node values, with tensors decoded on
/// demand (fp32/fp16/bf16/double to float, int32/int64 to long) from <c>raw_data</c>, the typed fields or
/// external data files (memory-mapped; location is relative to <see cref="ExternalDataDirectory"/>).
/// </summary>
internal sealed class OnnxModelFile
{
    private readonly Dictionary<string, TensorProto> _tensors = new(StringComparer.Ordinal);

    private OnnxModelFile(ModelProto model, string? externalDataDirectory, string sha256)
    {
        Model = model;
        ExternalDataDirectory = externalDataDirectory;
        Sha256 = sha256;
        if (model.Graph is null) throw new OnnxImportException("the file has no graph (ModelProto.graph is empty)");
        foreach (var t in model.Graph.Initializer) _tensors[t.Name] = t;
        foreach (var node in model.Graph.Node)
        {
            if (node.OpType != "Constant" || node.Domain.Length != 0 || node.Output.Count != 1) continue;
            var value = node.Attribute.FirstOrDefault(a => a.Name == "value");
            if (value?.T is { } t) { _tensors[node.Output[0]] = t; continue; }
            // value_float / value_ints / value_floats / value_int: keep them as small tensors.
            var scalar = node.Attribute.FirstOrDefault();
            if (scalar is null) continue;
            var tensor = new TensorProto { Name = node.Output[0] };
            switch (scalar.Name)
            {
                case "value_float": tensor.DataType = (int)OnnxDataType.Float; tensor.FloatData.Add(scalar.F); break;
                case "value_floats": tensor.DataType = (int)OnnxDataType.Float; tensor.FloatData.Add(scalar.Floats); tensor.Dims.Add(scalar.Floats.Count); break;
                case "value_int": tensor.DataType = (int)OnnxDataType.Int64; tensor.Int64Data.Add(scalar.I); break;
                case "value_ints": tensor.DataType = (int)OnnxDataType.Int64; tensor.Int64Data.Add(scalar.Ints); tensor.Dims.Add(scalar.Ints.Count); break;
                default: continue;
            }
            _tensors[node.Output[0]] = tensor;
        }
    }

    public ModelProto Model { get; }

    public GraphProto Graph => Model.Graph;

    /// <summary>Folder that external-data locations are relative to (null: external data is an error).</summary>
    public string? ExternalDataDirectory { get; }

    /// <summary>SHA-256 of the model file's bytes, lower-case hex.</summary>
    public string Sha256 { get; }

    /// <summary>Parses a model file; external data is looked up next to it.</summary>
    public static OnnxModelFile Open(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (IOException e) { throw new OnnxImportException($"cannot read ONNX file {path}: {e.Message}", e); }
        catch (UnauthorizedAccessException e) { throw new OnnxImportException($"cannot read ONNX file {path}: {e.Message}", e); }
        return Parse(bytes, Path.GetDirectoryName(Path.GetFullPath(path)), path);
    }

    /// <summary>Parses model bytes; <paramref name="source"/> names them in error messages.</summary>
    public static OnnxModelFile Parse(byte[] bytes, string? externalDataDirectory, string source = "model bytes")
    {
        ArgumentNullException.ThrowIfNull(bytes);
        if (bytes.Length == 0) throw new OnnxImportException($"{source}: empty file, not an ONNX model");
        ModelProto model;
        try { model = ModelProto.Parser.ParseFrom(bytes); }
        catch (InvalidProtocolBufferException e)
        {
            throw new OnnxImportException($"{source}: not a valid ONNX protobuf ({bytes.Length} bytes; truncated or corrupt?): {e.Message}", e);
        }
        if (model.Graph is null || model.Graph.Node.Count == 0)
            throw new OnnxImportException($"{source}: not an ONNX model (no graph nodes found in {bytes.Length} bytes)");
        return new OnnxModelFile(model, externalDataDirectory, Convert.ToHexStringLower(SHA256.HashData(bytes)));
    }

    /// <summary>True when <paramref name="name"/> is an initializer or a Constant node output.</summary>
    public bool IsConstant(string name) => _tensors.ContainsKey(name);

    /// <summary>Shape of a constant tensor.</summary>
    public long[] Dims(string name) => [.. Get(name).Dims];

    /// <summary>Element type of a constant tensor (ONNX DataType number).</summary>
    public int DataType(string name) => Get(name).DataType;

    private TensorProto Get(string name) =>
        _tensors.TryGetValue(name, out var t) ? t : throw new OnnxImportException($"tensor '{name}' is not an initializer or constant");

    private static long ElementCount(TensorProto t, string name)
    {
        long n = 1;
        foreach (long d in t.Dims)
        {
            if (d < 0) throw new OnnxImportException($"tensor '{name}' has a negative dimension {d}");
            n = checked(n * d);
        }
        if (n > Array.MaxLength) throw new OnnxImportException($"tensor '{name}' has {n} elements, more than one array can hold");
        return n;
    }

    /// <summary>Decodes a floating-point constant (fp32, fp16, bf16 or double) to fp32.</summary>
    public float[] ReadFloats(string name)
    {
        var t = Get(name);
        int n = (int)ElementCount(t, name);
        var type = (OnnxDataType)t.DataType;
        var result = new float[n];
        ReadOnlySpan<byte> raw = RawBytes(t, name, type);
        if (!raw.IsEmpty || t.DataLocation == TensorProto.Types.DataLocation.External || t.RawData.Length > 0)
        {
            int size = ElementSize(type, name);
            if (raw.Length != (long)n * size)
                throw new OnnxImportException($"tensor '{name}': {raw.Length} data bytes for {n} elements of {type} ({size} bytes each)");
            for (int i = 0; i < n; i++)
            {
                var b = raw.Slice(i * size, size);
                result[i] = type switch
                {
                    OnnxDataType.Float => BinaryPrimitives.ReadSingleLittleEndian(b),
                    OnnxDataType.Float16 => (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(b)),
                    OnnxDataType.BFloat16 => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(b) << 16),
                    OnnxDataType.Double => (float)BinaryPrimitives.ReadDoubleLittleEndian(b),
                    _ => throw new OnnxImportException($"tensor '{name}' has element type {t.DataType}, expected a float type"),
                };
            }
            return result;
        }
        switch (type)
        {
            case OnnxDataType.Float:
                RequireCount(t.FloatData.Count, n, name);
                t.FloatData.CopyTo(result, 0);
                break;
            case OnnxDataType.Double:
                RequireCount(t.DoubleData.Count, n, name);
                for (int i = 0; i < n; i++) result[i] = (float)t.DoubleData[i];
                break;
            case OnnxDataType.Float16:
            case OnnxDataType.BFloat16:
                // The typed form stores each 16-bit pattern in the low half of an int32_data entry.
                RequireCount(t.Int32Data.Count, n, name);
                for (int i = 0; i < n; i++)
                {
                    ushort bits = (ushort)t.Int32Data[i];
                    result[i] = type == OnnxDataType.Float16
                        ? (float)BitConverter.UInt16BitsToHalf(bits)
                        : BitConverter.Int32BitsToSingle(bits << 16);
                }
                break;
            default:
                throw new OnnxImportException($"tensor '{name}' has element type {t.DataType}, expected a float type");
        }
        return result;
    }

    /// <summary>Decodes an integer constant (int32 or int64).</summary>
    public long[] ReadInts(string name)
    {
        var t = Get(name);
        int n = (int)ElementCount(t, name);
        var type = (OnnxDataType)t.DataType;
        if (type is not (OnnxDataType.Int64 or OnnxDataType.Int32))
            throw new OnnxImportException($"tensor '{name}' has element type {t.DataType}, expected int64 or int32");
        var result = new long[n];
        ReadOnlySpan<byte> raw = RawBytes(t, name, type);
        if (t.RawData.Length > 0 || t.DataLocation == TensorProto.Types.DataLocation.External)
        {
            int size = ElementSize(type, name);
            if (raw.Length != (long)n * size)
                throw new OnnxImportException($"tensor '{name}': {raw.Length} data bytes for {n} elements of {type}");
            for (int i = 0; i < n; i++)
            {
                result[i] = type == OnnxDataType.Int64
                    ? BinaryPrimitives.ReadInt64LittleEndian(raw.Slice(i * 8, 8))
                    : BinaryPrimitives.ReadInt32LittleEndian(raw.Slice(i * 4, 4));
            }
            return result;
        }
        if (type == OnnxDataType.Int64)
        {
            RequireCount(t.Int64Data.Count, n, name);
            t.Int64Data.CopyTo(result, 0);
        }
        else
        {
            RequireCount(t.Int32Data.Count, n, name);
            for (int i = 0; i < n; i++) result[i] = t.Int32Data[i];
        }
        return result;
    }

    private static void RequireCount(int have, int need, string name)
    {
        if (have != need) throw new OnnxImportException($"tensor '{name}': {have} stored values for {need} elements");
    }

    private static int ElementSize(OnnxDataType type, string name) => type switch
    {
        OnnxDataType.Float or OnnxDataType.Int32 => 4,
        OnnxDataType.Float16 or OnnxDataType.BFloat16 => 2,
        OnnxDataType.Double or OnnxDataType.Int64 => 8,
        _ => throw new OnnxImportException($"tensor '{name}' has unsupported element type {(int)type}"),
    };

    private ReadOnlySpan<byte> RawBytes(TensorProto t, string name, OnnxDataType type)
    {
        if (t.DataLocation != TensorProto.Types.DataLocation.External) return t.RawData.Span;
        string? location = null;
        long offset = 0, length = -1;
        foreach (var kv in t.ExternalData)
        {
            switch (kv.Key)
            {
                case "location": location = kv.Value; break;
                case "offset": offset = ParseLong(kv.Value, name, "offset"); break;
                case "length": length = ParseLong(kv.Value, name, "length"); break;
            }
        }
        if (string.IsNullOrEmpty(location)) throw new OnnxImportException($"tensor '{name}': external data without a location");
        if (ExternalDataDirectory is null)
            throw new OnnxImportException($"tensor '{name}' is stored in external file '{location}', but the model was loaded from bytes without a data directory");
        string full = Path.GetFullPath(Path.Combine(ExternalDataDirectory, location));
        if (!File.Exists(full))
            throw new OnnxImportException($"tensor '{name}': external data file '{location}' not found (looked for {full})");
        long fileLength = new FileInfo(full).Length;
        if (length < 0) length = ElementCount(t, name) * ElementSize(type, name);
        if (offset < 0 || length < 0 || offset + length > fileLength)
            throw new OnnxImportException(
                $"tensor '{name}': external data offset {offset} + length {length} lies outside '{location}' ({fileLength} bytes)");
        if (length > Array.MaxLength) throw new OnnxImportException($"tensor '{name}': external data of {length} bytes is too large");
        if (length == 0) return [];
        using var map = MemoryMappedFile.CreateFromFile(full, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        using var view = map.CreateViewStream(offset, length, MemoryMappedFileAccess.Read);
        var buffer = new byte[length];
        view.ReadExactly(buffer);
        return buffer;
    }

    private static long ParseLong(string text, string name, string key) =>
        long.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out long v)
            ? v
            : throw new OnnxImportException($"tensor '{name}': external data {key} '{text}' is not an integer");
}
