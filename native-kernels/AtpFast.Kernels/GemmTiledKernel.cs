using ILGPU;

namespace AtpFast.Kernels;

/// <summary>
/// The fp32 SIMT GEMM for CUDA devices: a 16×16 thread group computes a 64×64 tile of C from 64×16 tiles of A and
/// 16×64 tiles of B staged in shared memory; each thread accumulates a 4×4 block in sixteen registers (written out:
/// ILGPU does not unroll loops, and a per-thread array would land in local memory). k runs in order for every element,
/// as in <see cref="GemmKernel"/>, whose epilogues it shares. FLOPs: 2·M·K·N; global bytes: 4·(M·K·N/64·2 + M·N).
/// </summary>
public static class GemmTiledKernel
{
    /// <summary>Tile of C per group.</summary>
    public const int Tile = 64;
    /// <summary>k per shared-memory stage.</summary>
    public const int Depth = 16;
    /// <summary>Threads per group side (16×16 threads).</summary>
    public const int Threads = 16;

    /// <param name="a">[M, K].</param>
    /// <param name="weights">The slab holding B and the bias.</param>
    /// <param name="c">[M, N] output.</param>
    /// <param name="c2">Second output of the epilogues.</param>
    /// <param name="aux">The gate or residual input.</param>
    /// <param name="s">Shape.</param>
    public static void Run(ArrayView<float> a, ArrayView<float> weights, ArrayView<float> c, ArrayView<float> c2,
        ArrayView<float> aux, GemmShape s)
    {
        var tileA = SharedMemory.Allocate<float>(Tile * Depth); // [64][16]
        var tileB = SharedMemory.Allocate<float>(Depth * Tile); // [16][64]
        int tx = Group.IdxX, ty = Group.IdxY, t = ty * Threads + tx;
        int row0 = Grid.IdxY * Tile, col0 = Grid.IdxX * Tile;
        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (int k0 = 0; k0 < s.K; k0 += Depth)
        {
            // 256 threads load 1024 elements of each tile: four apiece, zero outside the matrices.
            for (int e = t; e < Tile * Depth; e += Threads * Threads)
            {
                int r = e / Depth, k = e % Depth;
                tileA[e] = row0 + r < s.M && k0 + k < s.K ? a[(row0 + r) * s.K + k0 + k] : 0f;
                int kb = e / Tile, n = e % Tile;
                tileB[e] = k0 + kb < s.K && col0 + n < s.N ? weights[s.BIndex(k0 + kb, col0 + n)] : 0f;
            }
            Group.Barrier();
            for (int k = 0; k < Depth; k++)
            {
                float a0 = tileA[(ty * 4) * Depth + k], a1 = tileA[(ty * 4 + 1) * Depth + k];
                float a2 = tileA[(ty * 4 + 2) * Depth + k], a3 = tileA[(ty * 4 + 3) * Depth + k];
                float b0 = tileB[k * Tile + tx * 4], b1 = tileB[k * Tile + tx * 4 + 1];
                float b2 = tileB[k * Tile + tx * 4 + 2], b3 = tileB[k * Tile + tx * 4 + 3];
                c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
                c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
                c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
                c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
            }
            Group.Barrier();
        }
        int i = row0 + ty * 4, j = col0 + tx * 4;
        Put(i, j, c00, c01, c02, c03, weights, c, c2, aux, s);
        Put(i + 1, j, c10, c11, c12, c13, weights, c, c2, aux, s);
        Put(i + 2, j, c20, c21, c22, c23, weights, c, c2, aux, s);
        Put(i + 3, j, c30, c31, c32, c33, weights, c, c2, aux, s);
    }

    private static void Put(int i, int j, float v0, float v1, float v2, float v3, ArrayView<float> weights, ArrayView<float> c,
        ArrayView<float> c2, ArrayView<float> aux, GemmShape s)
    {
        if (i >= s.M) return;
        if (j < s.N) GemmKernel.Store(i, j, v0, weights, c, c2, aux, s);
        if (j + 1 < s.N) GemmKernel.Store(i, j + 1, v1, weights, c, c2, aux, s);
        if (j + 2 < s.N) GemmKernel.Store(i, j + 2, v2, weights, c, c2, aux, s);
        if (j + 3 < s.N) GemmKernel.Store(i, j + 3, v3, weights, c, c2, aux, s);
    }
}
