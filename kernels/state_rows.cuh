// A thread's share of a tile of state rows [S | z] as ChunkStatesKernel's wgmma accumulators hold
// it, moved between the slot and registers in 16-byte vectors.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <type_traits>

#include "kernels/power_common.cuh"

namespace sympow::kernels {

// The state column accumulator column c holds (c < d): thread t of a quad holds columns
// nt·8 + 2t + e (e = 0, 1) of the accumulators' n-tiles nt; mapped to 32·(nt / 4) + 8t +
// 2·(nt % 4) + e, a thread's columns of a row are runs of 8 adjacent state columns, which move in
// 16-byte vectors. The wgmma's B operand (the values) has its columns in the same order.
__host__ __device__ constexpr int StateColumn(int c) {
  const int nt = c / 8, t = c % 8 / 2, e = c % 2;
  return 32 * (nt / 4) + 8 * t + 2 * (nt % 4) + e;
}

// Rows g and g + 8 (halves 0 and 1) of a warp's 16, held by the lane (g, t): runs q of state
// columns [32q + 8t, 32q + 8t + 8) and, for t = 0, z. A row without a feature (−1) is zeros.
template <int kD, typename Storage>
struct StateRows {
  static_assert(kD % 32 == 0);
  static constexpr int kRuns = kD / 32;
  static constexpr int kVectors = 8 * sizeof(Storage) / 16;  // 16-byte vectors a run
  static constexpr int kPerVector = 16 / sizeof(Storage);
  uint4 runs[2][kRuns][kVectors];
  float z[2];

  // From the kv head's state: S as D × kD, then z.
  __device__ void Load(const Storage* state, int expanded_dim, const int (&feature)[2], int t) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int f = feature[half];
      const Storage* row = state + static_cast<int64_t>(f) * kD + 8 * t;
#pragma unroll
      for (int q = 0; q < kRuns; ++q) {
#pragma unroll
        for (int v = 0; v < kVectors; ++v) {
          runs[half][q][v] = f >= 0 ? *reinterpret_cast<const uint4*>(row + 32 * q + kPerVector * v)
                                    : make_uint4(0, 0, 0, 0);
        }
      }
      z[half] = f >= 0 && t == 0
                    ? LoadOne(state + static_cast<int64_t>(expanded_dim) * kD + f)
                    : 0.0f;
    }
  }

  __device__ void Store(Storage* state, int expanded_dim, const int (&feature)[2], int t) const {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int f = feature[half];
      if (f < 0) continue;
      Storage* row = state + static_cast<int64_t>(f) * kD + 8 * t;
#pragma unroll
      for (int q = 0; q < kRuns; ++q) {
#pragma unroll
        for (int v = 0; v < kVectors; ++v) {
          *reinterpret_cast<uint4*>(row + 32 * q + kPerVector * v) = runs[half][q][v];
        }
      }
      if (t == 0) StoreOne(state + static_cast<int64_t>(expanded_dim) * kD + f, z[half]);
    }
  }

  // Accumulator columns nt·8 + 2t and + 1 (nt < kD / 8) of row `half`, in fp32.
  __device__ float2 Pair(int half, int nt) const {
    const uint32_t* words = Words(half, nt);
    if constexpr (std::is_same_v<Storage, float>) {
      return make_float2(__uint_as_float(words[0]), __uint_as_float(words[1]));
    } else {
      return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(words));
    }
  }

  __device__ void SetPair(int half, int nt, float2 x) {
    uint32_t* words = Words(half, nt);
    if constexpr (std::is_same_v<Storage, float>) {
      words[0] = __float_as_uint(x.x);
      words[1] = __float_as_uint(x.y);
    } else {
      *reinterpret_cast<__nv_bfloat162*>(words) = __float22bfloat162_rn(x);
    }
  }

 private:
  // Pair m = nt % 4 of run nt / 4: elements 2m and 2m + 1.
  __device__ const uint32_t* Words(int half, int nt) const {
    const int m = nt % 4, element = 2 * m;
    return &reinterpret_cast<const uint32_t*>(
        &runs[half][nt / 4][element / kPerVector])[element % kPerVector * sizeof(Storage) / 4];
  }
  __device__ uint32_t* Words(int half, int nt) {
    return const_cast<uint32_t*>(static_cast<const StateRows*>(this)->Words(half, nt));
  }
};

}  // namespace sympow::kernels
