using AtpFast.Onnx;
using AtpFast.Onnx.Proto;
using Google.Protobuf;

namespace AtpFast.Tests.Integration;

/// <summary>Initializer decoding for every storage form the reader accepts: raw bytes and typed fields, fp32, fp16,
/// bf16, double, int32 and int64 — checked against values built here bit by bit.</summary>
public sealed class TensorDecodingTests
{
    private static readonly float[] Values = [1f, -2.5f, 0.15625f, 65504f, -0.0078125f, 3f];

    private static OnnxModelFile FileWith(params TensorProto[] tensors)
    {
        // The stories260K graph supplies a real graph; the extra initializers ride along.
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(ModelPaths.Stories260K));
        model.Graph.Initializer.Add(tensors);
        return OnnxModelFile.Parse(model.ToByteArray(), externalDataDirectory: null);
    }

    private static TensorProto Tensor(string name, int type, Action<TensorProto> fill)
    {
        var t = new TensorProto { Name = name, DataType = type };
        t.Dims.Add(2);
        t.Dims.Add(3);
        fill(t);
        return t;
    }

    [Fact]
    public void Float_forms_decode_to_the_same_values()
    {
        byte[] f32 = Values.SelectMany(BitConverter.GetBytes).ToArray();
        byte[] f16 = Values.SelectMany(v => BitConverter.GetBytes(BitConverter.HalfToUInt16Bits((Half)v))).ToArray();
        // bf16 = the upper 16 bits of the fp32 pattern (all test values are exact in bf16 except 65504, which
        // bf16 cannot hold: compare against its truncation).
        ushort[] bf16Bits = Values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray();
        byte[] bf16 = bf16Bits.SelectMany(BitConverter.GetBytes).ToArray();
        var file = FileWith(
            Tensor("raw_f32", 1, t => t.RawData = ByteString.CopyFrom(f32)),
            Tensor("typed_f32", 1, t => t.FloatData.Add(Values)),
            Tensor("raw_f16", 10, t => t.RawData = ByteString.CopyFrom(f16)),
            Tensor("typed_f16", 10, t => t.Int32Data.Add(Values.Select(v => (int)BitConverter.HalfToUInt16Bits((Half)v)))),
            Tensor("raw_bf16", 16, t => t.RawData = ByteString.CopyFrom(bf16)),
            Tensor("typed_bf16", 16, t => t.Int32Data.Add(bf16Bits.Select(b => (int)b))),
            Tensor("typed_f64", 11, t => t.DoubleData.Add(Values.Select(v => (double)v))));
        float[] bf16Expected = bf16Bits.Select(b => BitConverter.UInt32BitsToSingle((uint)b << 16)).ToArray();
        Assert.Equal(Values, file.ReadFloats("raw_f32"));
        Assert.Equal(Values, file.ReadFloats("typed_f32"));
        Assert.Equal(Values, file.ReadFloats("raw_f16"));
        Assert.Equal(Values, file.ReadFloats("typed_f16"));
        Assert.Equal(bf16Expected, file.ReadFloats("raw_bf16"));
        Assert.Equal(bf16Expected, file.ReadFloats("typed_bf16"));
        Assert.Equal(Values, file.ReadFloats("typed_f64"));
    }

    [Fact]
    public void Integer_forms_decode_to_the_same_values()
    {
        long[] values = [1, -2, 3, long.MaxValue, -5, 6];
        var file = FileWith(
            Tensor("raw_i64", 7, t => t.RawData = ByteString.CopyFrom(values.SelectMany(BitConverter.GetBytes).ToArray())),
            Tensor("typed_i64", 7, t => t.Int64Data.Add(values)),
            Tensor("typed_i32", 6, t => t.Int32Data.Add([1, -2, 3, int.MaxValue, -5, 6])));
        Assert.Equal(values, file.ReadInts("raw_i64"));
        Assert.Equal(values, file.ReadInts("typed_i64"));
        Assert.Equal([1, -2, 3, int.MaxValue, -5, 6], file.ReadInts("typed_i32"));
    }

    [Fact]
    public void Data_of_the_wrong_length_is_rejected_with_the_tensor_named()
    {
        var file = FileWith(Tensor("short", 1, t => t.RawData = ByteString.CopyFrom(new byte[20])));
        var e = Assert.Throws<OnnxImportException>(() => file.ReadFloats("short"));
        Assert.Contains("'short'", e.Message, StringComparison.Ordinal);
    }
}
