using ILGPU;

namespace AtpFast.Kernels;

/// <summary>What a GEMM does with each result v = Σ_k A[i,k]·B[k,j] (+ bias[j], or + C[i,j] when accumulating).</summary>
public enum GemmEpilogue
{
    /// <summary>C = v.</summary>
    Plain,
    /// <summary>C = v (the pre-activation) and C2 = act(v) (SwiGLU: silu(aux)·v with aux the gate).</summary>
    Activation,
    /// <summary>C = v and C2 = aux + v (the residual add).</summary>
    Residual,
}

/// <summary>Shape and options of a GEMM: C[M,N] = A[M,K]·B with B = W[K,N] or Wᵀ (W stored [N,K]) at
/// <see cref="BOffset"/> in the weight slab.</summary>
/// <param name="M">Rows of A and C.</param>
/// <param name="K">Reduction length.</param>
/// <param name="N">Columns of C.</param>
/// <param name="BOffset">Offset of W in the slab.</param>
/// <param name="TransposeB">Multiply by Wᵀ (W stored [N,K]): the activation-only backward's dX = dY·Wᵀ.</param>
/// <param name="Accumulate">C += A·B (bias ignored).</param>
/// <param name="BiasOffset">Offset of bias[N] in the slab, or −1.</param>
/// <param name="Epilogue">What to write.</param>
/// <param name="Activation">The nonlinearity of <see cref="GemmEpilogue.Activation"/>.</param>
public readonly record struct GemmShape(int M, int K, int N, int BOffset, Flag TransposeB, Flag Accumulate, int BiasOffset,
    GemmEpilogue Epilogue, ActivationKind Activation)
{
    /// <summary>B[k, j].</summary>
    public int BIndex(int k, int j) => BOffset + (TransposeB ? j * K + k : k * N + j);
}

/// <summary>
/// The strict fp32 GEMM with fused epilogues (bias, GELU erf/tanh, ReLU, SiLU·up, residual add): one thread per
/// element of C, k in order, so an element does not depend on M or on its tile. It is the reference for the tiled
/// and tensor-core GEMMs and the path ILGPU's CPU accelerator runs. FLOPs: 2·M·K·N; bytes: 4·(M·K·N·2/reuse + M·N)
/// (no reuse: each thread streams a row of A and a column of B).
/// </summary>
public static class GemmKernel
{
    /// <param name="index">Element of C [M, N].</param>
    /// <param name="a">[M, K].</param>
    /// <param name="weights">The slab holding B and the bias.</param>
    /// <param name="c">[M, N] output (read when accumulating).</param>
    /// <param name="c2">[M, N] second output of the activation and residual epilogues.</param>
    /// <param name="aux">[M, N] the gate (SwiGLU) or the residual input.</param>
    /// <param name="s">Shape.</param>
    public static void Run(Index1D index, ArrayView<float> a, ArrayView<float> weights, ArrayView<float> c, ArrayView<float> c2,
        ArrayView<float> aux, GemmShape s)
    {
        int i = index / s.N, j = index % s.N;
        float sum = 0;
        for (int k = 0; k < s.K; k++) sum += a[i * s.K + k] * weights[s.BIndex(k, j)];
        Store(i, j, sum, weights, c, c2, aux, s);
    }

    /// <summary>Writes one result with the epilogue (shared by every GEMM kernel).</summary>
    public static void Store(int i, int j, float sum, ArrayView<float> weights, ArrayView<float> c, ArrayView<float> c2,
        ArrayView<float> aux, GemmShape s)
    {
        int at = i * s.N + j;
        float v = s.Accumulate ? c[at] + sum : s.BiasOffset >= 0 ? sum + weights[s.BiasOffset + j] : sum;
        c[at] = v;
        if (s.Epilogue == GemmEpilogue.Activation)
            c2[at] = DeviceMath.Activate(s.Activation, v, s.Activation == ActivationKind.SwiGlu ? aux[at] : 0f);
        else if (s.Epilogue == GemmEpilogue.Residual)
            c2[at] = aux[at] + v;
    }
}
