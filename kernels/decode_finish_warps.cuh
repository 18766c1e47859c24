// FinishHeadsWarps: FinishHeads (kernels/power_decode.cu) with a warp per (row, kv head) instead of
// a block, for steps of many rows. Eight independent warps a block, no block barrier: a step's
// items then fit the GPU at once (3,072 at 256 sessions of the 124M shape are 384 blocks), where
// blocks of their own ran in waves after the stream kernel, mostly waiting on memory.
#pragma once

#include <cstdint>

#include "kernels/decode_scratch.cuh"
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

// q·key for each query head of the group, by one lane over its whole key (16-byte loads when the
// key is aligned: a buffer of an odd token count leaves its rows 4-byte aligned only).
__device__ inline void KeyDots(const float* q, const float* key, int d, int group,
                               float (&dots)[kMaxGroup]) {
  if ((reinterpret_cast<uintptr_t>(key) & 15) == 0) {
    for (int j = 0; j < d; j += 4) {
      const float4 k = *reinterpret_cast<const float4*>(key + j);
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
        if (g < group) {
          const float* x = q + g * d + j;
          dots[g] += x[0] * k.x + x[1] * k.y + x[2] * k.z + x[3] * k.w;
        }
      }
    }
  } else {
    for (int j = 0; j < d; ++j) {
      const float k = key[j];
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
        if (g < group) dots[g] += q[g * d + j] * k;
      }
    }
  }
}

// grid (ceil(items / kFinishWarps)), kThreads threads; as FinishHeads, for item = (row, kv head)
// numbered kv-head-fastest. Lanes take the buffered tokens 32 at a time, one each, for their
// weights; then every lane adds each of the 32 tokens' values at its columns lane + 32c.
__global__ void FinishHeadsWarps(PowerAttentionShape shape, AttentionRows rows,
                                 const DecodeRow* decode_rows, int64_t items, LayerOffsets layer,
                                 DecodeScratch scratch, const void* padding_state) {
  constexpr int kColumnsPerLane = 128 / 32;
  extern __shared__ __align__(16) float shared[];
  const int d = shape.head_dim;
  const int N = shape.buffer_tokens;
  const int group = shape.num_heads / shape.num_kv_heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t item = int64_t{blockIdx.x} * kFinishWarps + warp;
  if (item >= items) return;
  const int64_t r = item / shape.num_kv_heads;
  const int h = static_cast<int>(item - r * shape.num_kv_heads);
  const DecodeRow decode = decode_rows[r];
  float* q = shared + warp * (group * d + N);  // [group × d]
  float* decay = q + group * d;                 // [N]

  float* buffer = reinterpret_cast<float*>(static_cast<char*>(decode.state) + layer.buffer) +
                  h * BufferFloatsPerHead(shape);
  float* log_gates = buffer + kBufferHeaderFloats;
  float* buffered_keys = log_gates + N;
  float* buffered_values = buffered_keys + N * d;
  const int64_t kv_row = decode.row * shape.num_kv_heads + h;
  const float* new_key = rows.k + kv_row * d;
  const float* new_value = rows.v + kv_row * d;
  const float new_gate = rows.log_gate ? rows.log_gate[kv_row] : 0.0f;
  const int n = static_cast<int>(buffer[0]) + 1;
  for (int i = lane; i < group * d; i += 32) {
    q[i] = rows.q[(decode.row * shape.num_heads + h * group) * d + i];
  }
  for (int s = lane; s < n; s += 32) decay[s] = s == n - 1 ? new_gate : log_gates[s];
  __syncwarp();
  const float carried = DecaysToNow(decay, n, decay) * shape.scale_pow;
  __syncwarp();

  float acc[kMaxGroup][kColumnsPerLane] = {};
  float total[kMaxGroup] = {};
  for (int first = 0; first < n; first += 32) {
    const int s = first + lane;
    float weight[kMaxGroup] = {};
    if (s < n) {
      float dots[kMaxGroup] = {};
      KeyDots(q, s == n - 1 ? new_key : buffered_keys + s * d, d, group, dots);
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
        weight[g] = EvenPower(shape.scale * dots[g], shape.degree) * decay[s];
        total[g] += weight[g];
      }
    }
    const int tokens = min(32, n - first);
#pragma unroll 4
    for (int t = 0; t < tokens; ++t) {
      const float* value = first + t == n - 1 ? new_value : buffered_values + (first + t) * d;
      float v[kColumnsPerLane];
#pragma unroll
      for (int c = 0; c < kColumnsPerLane; ++c) {
        v[c] = lane + 32 * c < d ? value[lane + 32 * c] : 0.0f;
      }
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
        if (g < group) {
          const float w = __shfl_sync(0xffffffffu, weight[g], t);
#pragma unroll
          for (int c = 0; c < kColumnsPerLane; ++c) acc[g][c] += w * v[c];
        }
      }
    }
  }
  WaitForPrimary();  // the sums of launch 1
  const int64_t first_head = r * shape.num_heads + h * group;
  float* out = rows.out + (decode.row * shape.num_heads + h * group) * d;
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g < group) {
      const float weight_sum = WarpSum(total[g]);
      const float inverse = 1.0f / (carried * scratch.denominators[first_head + g] + weight_sum +
                                    kNormalizerEpsilon);
#pragma unroll
      for (int c = 0; c < kColumnsPerLane; ++c) {
        const int j = lane + 32 * c;
        if (j < d) {
          float& numerator = scratch.numerators[(first_head + g) * d + j];
          out[g * d + j] = (carried * numerator + acc[g][c]) * inverse;
          numerator = 0.0f;
        }
      }
    }
  }
  __syncwarp();  // every lane has read the denominators, the old count and the buffered tokens
  if (lane < group) scratch.denominators[first_head + lane] = 0.0f;
  if (decode.state == padding_state) return;
  for (int j = lane; j < d; j += 32) {
    buffered_keys[(n - 1) * d + j] = new_key[j];
    buffered_values[(n - 1) * d + j] = new_value[j];
  }
  if (lane == 0) {
    log_gates[n - 1] = new_gate;
    buffer[0] = static_cast<float>(n);
  }
}

}  // namespace sympow::kernels
