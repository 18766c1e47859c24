// FinishHeadsWarps: FinishHeads (kernels/power_decode.cu) with a warp per (row, kv head) instead of
// a block, for steps of many rows. Eight independent warps a block, no block barrier: a step's
// items then fit the GPU at once (3,072 at 256 sessions of the 124M shape are 384 blocks), where
// blocks of their own ran in waves after the stream kernel, mostly waiting on memory.
#pragma once

#include <cstdint>

#include "kernels/decode_common.cuh"
#include "kernels/grid.cuh"
#include "kernels/power_attention.h"
#include "kernels/power_common.cuh"

namespace sympow::kernels {

constexpr int kFinishWarps = kThreads / 32;

// Shared memory of a FinishHeadsWarps block: each warp's q [group × d] and decays [N].
inline size_t FinishWarpsSharedBytes(const PowerAttentionShape& shape) {
  const int group = shape.num_heads / shape.num_kv_heads;
  return sizeof(float) * kFinishWarps * (group * shape.head_dim + shape.buffer_tokens);
}

// q·key for each query head of the group, by one lane over its whole key: 16-byte loads kBatch at a
// time (all in flight at once) when the key is aligned (a buffer of an odd token count leaves its
// rows 4-byte aligned only), one float at a time otherwise.
template <int kHeadDim, int kGroup>
__device__ inline void KeyDots(const float* q, const float* key, int group, float (&dots)[kGroup]) {
  constexpr int kBatch = 8;
  if ((reinterpret_cast<uintptr_t>(key) & 15) == 0) {
#pragma unroll
    for (int first = 0; first < kHeadDim; first += 4 * kBatch) {
      float4 k[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) k[b] = *reinterpret_cast<const float4*>(key + first + 4 * b);
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
#pragma unroll
        for (int g = 0; g < kGroup; ++g) {
          if (g < group) {
            const float* x = q + g * kHeadDim + first + 4 * b;
            dots[g] += x[0] * k[b].x + x[1] * k[b].y + x[2] * k[b].z + x[3] * k[b].w;
          }
        }
      }
    }
  } else {
    for (int j = 0; j < kHeadDim; ++j) {
      const float k = key[j];
#pragma unroll
      for (int g = 0; g < kGroup; ++g) {
        if (g < group) dots[g] += q[g * kHeadDim + j] * k;
      }
    }
  }
}

// grid (ceil(items / kFinishWarps)), kThreads threads; as FinishHeads at head_dim kHeadDim, for
// item = (row, kv head) numbered kv-head-fastest, a lane's sums sized for kGroup (≥ the group)
// query heads. Lanes take the buffered tokens 32 at a time, one each, for their weights; then
// every lane adds the 32 tokens' values at its columns lane + 32c, kValueTokens tokens' loads in
// flight at once.
template <int kHeadDim, int kGroup>
__global__ void __launch_bounds__(kThreads)
    FinishHeadsWarps(PowerAttentionShape shape, AttentionRows rows, const DecodeRow* decode_rows,
                     int64_t items, LayerOffsets layer, DecodeScratch scratch,
                     const void* padding_state, bool folds) {
  constexpr int kColumnsPerLane = kHeadDim / 32;
  constexpr int kValueTokens = 32 / kColumnsPerLane;
  extern __shared__ __align__(16) float shared[];
  constexpr int d = kHeadDim;
  const int N = shape.buffer_tokens;
  const int group = shape.num_heads / shape.num_kv_heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (!folds) AllowDependentsToStart();  // as FinishHeads
  const int64_t item = int64_t{blockIdx.x} * kFinishWarps + warp;
  if (item >= items) return;
  const int64_t r = item / shape.num_kv_heads;
  const int h = static_cast<int>(item - r * shape.num_kv_heads);
  const DecodeRow decode = decode_rows[r];
  float* q = shared + warp * (group * d + N);  // [group × d]
  float* decay = q + group * d;                // [N]

  const PairBuffer buffer(shape, rows, decode, layer, h);
  const int n = buffer.n;
  for (int i = lane; i < group * d; i += 32) {
    q[i] = rows.q[(decode.row * shape.num_heads + h * group) * d + i];
  }
  for (int s = lane; s < n; s += 32) decay[s] = buffer.LogGate(s);
  __syncwarp();
  const float carried = DecaysToNow(decay, n, decay) * shape.scale_pow;
  __syncwarp();

  float acc[kGroup][kColumnsPerLane] = {};
  float total[kGroup] = {};
  for (int first = 0; first < n; first += 32) {
    const int s = first + lane;
    float weight[kGroup] = {};
    if (s < n) {
      float dots[kGroup] = {};
      KeyDots<kHeadDim, kGroup>(q, buffer.Key(s), group, dots);
#pragma unroll
      for (int g = 0; g < kGroup; ++g) {
        weight[g] = EvenPower(shape.scale * dots[g], shape.degree) * decay[s];
        total[g] += weight[g];
      }
    }
    const int tokens = min(32, n - first);
    for (int base = 0; base < tokens; base += kValueTokens) {
      float v[kValueTokens][kColumnsPerLane];
#pragma unroll
      for (int t = 0; t < kValueTokens; ++t) {
        const int token = first + base + t;
        const float* value = buffer.Value(token);
#pragma unroll
        for (int c = 0; c < kColumnsPerLane; ++c) {
          v[t][c] = base + t < tokens ? value[lane + 32 * c] : 0.0f;
        }
      }
#pragma unroll
      for (int t = 0; t < kValueTokens; ++t) {
#pragma unroll
        for (int g = 0; g < kGroup; ++g) {
          if (g < group) {
            const float w = __shfl_sync(0xffffffffu, weight[g], base + t);
#pragma unroll
            for (int c = 0; c < kColumnsPerLane; ++c) acc[g][c] += w * v[t][c];
          }
        }
      }
    }
  }
  WaitForPrimary();  // the sums of launch 1
  const int64_t first_head = r * shape.num_heads + h * group;
  float* out = rows.out + (decode.row * shape.num_heads + h * group) * d;
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    if (g < group) {
      const float weight_sum = WarpSum(total[g]);
      const float inverse =
          1.0f / (carried * scratch.denominators[first_head + g] + weight_sum + kNormalizerEpsilon);
#pragma unroll
      for (int c = 0; c < kColumnsPerLane; ++c) {
        const int j = lane + 32 * c;
        float& numerator = scratch.numerators[(first_head + g) * d + j];
        out[g * d + j] = (carried * numerator + acc[g][c]) * inverse;
        numerator = 0.0f;
      }
    }
  }
  __syncwarp();  // every lane has read the denominators, the old count and the buffered tokens
  if (lane < group) scratch.denominators[first_head + lane] = 0.0f;
  if (decode.state != padding_state) buffer.Advance(lane, 32, folds);
}

}  // namespace sympow::kernels
