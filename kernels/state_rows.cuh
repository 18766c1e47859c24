// A thread's share of a tile of state rows [S | z] as ChunkStatesKernel's wgmma accumulators hold
// it, moved between the slot and registers a run of adjacent columns at a time.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <type_traits>

#include "kernels/power_common.cuh"

namespace sympow::kernels {

// The state column accumulator column c holds (c < d), for runs of `run` columns (2, 4 or 8):
// thread t of a quad holds columns nt·8 + 2t + e (e = 0, 1) of the accumulators' n-tiles nt; with
// m = nt mod (run / 2) and q = nt div (run / 2) they hold state column 4·run·q + run·t + 2m + e, so
// that a thread's columns of a row are runs of `run` adjacent state columns and a quad's runs are
// adjacent. Runs of 2 keep the columns in place. The wgmma's B operand (the values) has its
// columns in the same order.
__host__ __device__ constexpr int StateColumn(int c, int run) {
  const int nt = c / 8, t = c % 8 / 2, e = c % 2, pairs = run / 2;
  return 4 * run * (nt / pairs) + run * t + 2 * (nt % pairs) + e;
}

template <int kBytes>
using RunVector =
    std::conditional_t<kBytes == 4, uint32_t, std::conditional_t<kBytes == 8, uint2, uint4>>;

// Rows g and g + 8 (halves 0 and 1) of a warp's 16, held by the lane (g, t): its runs of kRun
// columns (one load or store each) and, for t = 0, z. A row without a feature (−1) is zeros.
template <int kD, typename Storage, int kRun>
struct StateRows {
  static_assert(kRun == 2 || kRun == 4 || kRun == 8);
  static constexpr int kPairs = kRun / 2;  // accumulator pairs a run
  static constexpr int kRuns = kD / 8 / kPairs;
  using Vector = RunVector<kRun * sizeof(Storage)>;
  Vector runs[2][kRuns];
  float z[2];

  // From the kv head's state: S as D × kD, then z.
  __device__ void Load(const Storage* state, int expanded_dim, const int (&feature)[2], int t) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int f = feature[half];
      const Storage* row = state + static_cast<int64_t>(f) * kD + kRun * t;
#pragma unroll
      for (int q = 0; q < kRuns; ++q) {
        runs[half][q] = f >= 0 ? *reinterpret_cast<const Vector*>(row + 4 * kRun * q) : Vector{};
      }
      z[half] =
          f >= 0 && t == 0 ? LoadOne(state + static_cast<int64_t>(expanded_dim) * kD + f) : 0.0f;
    }
  }

  __device__ void Store(Storage* state, int expanded_dim, const int (&feature)[2], int t) const {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int f = feature[half];
      if (f < 0) continue;
      Storage* row = state + static_cast<int64_t>(f) * kD + kRun * t;
#pragma unroll
      for (int q = 0; q < kRuns; ++q) {
        *reinterpret_cast<Vector*>(row + 4 * kRun * q) = runs[half][q];
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
  // Pair nt mod kPairs of run nt div kPairs: its elements 2m and 2m + 1.
  __device__ const uint32_t* Words(int half, int nt) const {
    const int element = 2 * (nt % kPairs);
    return reinterpret_cast<const uint32_t*>(&runs[half][nt / kPairs]) +
           element * sizeof(Storage) / 4;
  }
  __device__ uint32_t* Words(int half, int nt) {
    return const_cast<uint32_t*>(static_cast<const StateRows*>(this)->Words(half, nt));
  }
};

}  // namespace sympow::kernels
