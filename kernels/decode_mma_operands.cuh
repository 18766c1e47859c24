// How the decode stream kernel (StreamItemMma, kernels/decode_stream_mma.cuh) multiplies a warp's
// block of 16 staged state rows × 64 columns by φ(q) on tensor cores, one policy per state storage
// type. The product is taken transposed, numeratorsᵀ = Sᵀ·φ(q): A holds state columns (m) ×
// features (k), B φ(q) of four query heads an n-tile, each head as two columns, its high and low
// parts (their sum keeps about fp32's precision). Lane (g, t) makes the φ(q) values of features 2t,
// 2t + 1 (pair 0) and 2t + 8, 2t + 9 (pair 1) of a block, for query head g / 2 of each n-tile,
// part g % 2, and PackPhi puts them into its B words (pair p's at b[p + 2w], w < kPairWords).
// Rows are staged in 16-byte chunks whose order within a row is XOR-swizzled by the row (Chunk), so
// that the fragments read without bank conflicts.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/mma_bf16.cuh"
#include "kernels/mma_tf32.cuh"

namespace sympow::kernels {

// One part of x as a bf16 pair: its rounding (high) or what that left (low); high + low keeps
// fp32's precision to about 2^-16.
__device__ inline uint32_t Bf16Part(float x0, float x1, bool low) {
  const __nv_bfloat162 rounded = __floats2bfloat162_rn(x0, x1);
  if (!low) return *reinterpret_cast<const uint32_t*>(&rounded);
  const float2 back = __bfloat1622float2(rounded);
  return PackBf16(x0 - back.x, x1 - back.y);
}

// Two adjacent values of z, widened.
__device__ inline float2 WidenPair(__nv_bfloat162 pair) { return __bfloat1622float2(pair); }
__device__ inline float2 WidenPair(float2 pair) { return pair; }

// bf16 states: mma m16n8k16, A from the staged rows by ldmatrix.trans. One MMA per 16 columns
// takes both parts of four heads: 4 MMAs per 2 KB of state.
struct Bf16StateOperands {
  using Element = __nv_bfloat16;
  using ZPair = __nv_bfloat162;
  static constexpr int kPhiWords = 2;  // B words an n-tile: b[pair], the pair's two features
  static constexpr int kPairWords = 1;
  // Whether a step may fold full buffers as it streams (kernels/decode_fold.cuh writes bf16 rows).
  static constexpr bool kFoldsInStep = true;

  __device__ static int Chunk(int row, int chunk) { return chunk ^ (row & 7); }

  __device__ static void PackPhi(float phi0, float phi1, int pair, bool low, uint32_t* b) {
    b[pair] = Bf16Part(phi0, phi1, low);
  }

  // acc[n-tile][m-tile] += the block's columns × φ(q) of the n-tile.
  template <int kHeadTiles>
  __device__ static void Multiply(float (&acc)[kHeadTiles][4][4], const Element* stage, int lane,
                                  const uint32_t (&b)[kHeadTiles][kPhiWords]) {
    // Matrices of the x4: features 0-7 then 8-15 (k), each as columns 0-7 and 8-15 (m).
    const int row = (lane & 7) + (lane >> 4) * 8;
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
      const int chunk = 2 * mt + ((lane >> 3) & 1);
      uint32_t a[4];
      LdMatrixX4Trans(a, stage + row * 64 + Chunk(row, chunk) * 8);
#pragma unroll
      for (int j = 0; j < kHeadTiles; ++j) MmaBf16(acc[j][mt], a, b[j][0], b[j][1]);
    }
  }

  // The block column of accumulator row g + 8·half of m-tile mt.
  __device__ static int Column(int mt, int half, int g) { return 16 * mt + 8 * half + g; }
};

// fp32 states: mma m16n8k8 in TF32, each state value as a TF32 high part and what that leaves,
// two MMAs (3xTF32: only the product of the low parts is lost; ~2^-20 relative). k-step s of a
// block takes features 2t + s (k = t) and 2t + 8 + s (k = t + 4), so that a lane makes the same
// features of φ(q) as on bf16; m = g is block column 8g + 2·mt, m = g + 8 the column after, so
// that a lane reads its A values of a row as two 16-byte loads. 16 MMAs an n-tile per 4 KB of
// state.
struct Fp32StateOperands {
  using Element = float;
  using ZPair = float2;
  static constexpr int kPhiWords = 4;  // b[2s + pair]: k-step s, register `pair`
  static constexpr int kPairWords = 2;
  static constexpr bool kFoldsInStep = false;

  // Lanes t of a quarter warp read rows 2t (+ 1, + 8, + 9) at chunks 2g + h: bits 0 and 1 of t
  // flip bits 0 and 2 of the chunk, that of g sets bit 1, so its eight lanes meet eight chunks.
  __device__ static int Chunk(int row, int chunk) { return chunk ^ (((row >> 1) & 1) | (row & 4)); }

  __device__ static void PackPhi(float phi0, float phi1, int pair, bool low, uint32_t* b) {
    b[pair] = Tf32Part(phi0, low);
    b[2 + pair] = Tf32Part(phi1, low);
  }

  template <int kHeadTiles>
  __device__ static void Multiply(float (&acc)[kHeadTiles][4][4], const Element* stage, int lane,
                                  const uint32_t (&b)[kHeadTiles][kPhiWords]) {
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int s = 0; s < 2; ++s) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        // Rows 2t + s (k = t) and 2t + 8 + s (k = t + 4), block columns 8g + 4h … + 3: m-tiles
        // 2h and 2h + 1.
        float4 v[2];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          const int row = 2 * t + 8 * i + s;
          v[i] = *reinterpret_cast<const float4*>(stage + row * 64 + Chunk(row, 2 * g + h) * 4);
        }
        const float values[2][4] = {{v[0].x, v[0].y, v[1].x, v[1].y},
                                    {v[0].z, v[0].w, v[1].z, v[1].w}};
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          uint32_t high[4], low[4];
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            high[e] = Tf32Part(values[half][e], false);
            low[e] = Tf32Part(values[half][e], true);
          }
          const int mt = 2 * h + half;
#pragma unroll
          for (int j = 0; j < kHeadTiles; ++j) {
            MmaTf32(acc[j][mt], high, b[j][2 * s], b[j][2 * s + 1]);
            MmaTf32(acc[j][mt], low, b[j][2 * s], b[j][2 * s + 1]);
          }
        }
      }
    }
  }

  __device__ static int Column(int mt, int half, int g) { return 8 * g + 2 * mt + half; }
};

}  // namespace sympow::kernels
