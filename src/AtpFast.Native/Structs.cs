using System.Runtime.InteropServices;

namespace AtpFast.Native;

// The structs of atpfast.h, field for field (sequential layout, natural alignment). Their sizes are checked against
// the caller's struct_size on every call, and the tests compile the header and compare.

/// <summary><c>atp_options</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct AtpOptions
{
    public uint StructSize;
    public int Method;
    public int Metric;
    public int Direction;
    public uint NodeTypes;
    public int Positions;
    public int VerifyTop;
    public int Seed;
    public int PairsPerBatch;
    public int BoundDraws;
    public double Budget;
    public double BoundAlpha;
    public double InclusionProbability;
}

/// <summary><c>atp_model_info</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct AtpModelInfo
{
    public uint StructSize;
    public int Family;
    public int Layers;
    public int Heads;
    public int KvHeads;
    public int HeadDim;
    public int DModel;
    public int DMlp;
    public int VocabSize;
    public int MaxPositions;
    public int HasTokenizer;
    public int Reserved;
    public long Parameters;
    public fixed byte Backend[32];
    public fixed byte Sha256[72];
}

/// <summary><c>atp_result_info</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct AtpResultInfo
{
    public uint StructSize;
    public int Meaningful;
    public int Method;
    public int Metric;
    public int Direction;
    public uint NodeTypes;
    public int Positions;
    public int Pairs;
    public int SeqLen;
    public int Verified;
    public long Rows;
    public double MethodCost;
    public double VerificationCost;
    public double BoundCost;
    public double TotalCost;
    public double BruteForceCost;
    public double BoundTheta;
    public double BaselineClean;
    public double BaselineNoise;
    public double ElapsedSeconds;
    public fixed byte Backend[32];
}
