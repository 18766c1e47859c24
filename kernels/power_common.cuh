// Device helpers shared by the power-attention kernels.
#pragma once

#include <cstdint>

namespace sympow::kernels {

// The ε of MODEL.md, added to the normaliser.
constexpr float kNormalizerEpsilon = 1e-6f;

// The product x[f_0]·…·x[f_{p−1}] of one feature's factors.
__device__ inline float Monomial(const float* x, const uint8_t* factors, int degree) {
  float product = x[factors[0]];
  for (int j = 1; j < degree; ++j) product *= x[factors[j]];
  return product;
}

__device__ inline float EvenPower(float x, int degree) {
  const float squared = x * x;
  float result = squared;
  for (int k = 2; k < degree; k += 2) result *= squared;
  return result;
}

// Called by one whole warp: out[t] = Σ_{s≤t} log_gate of the chunk's token s, for the chunk's
// kChunk tokens from `first_row` (tokens at or past n, and every token without gating, add 0).
template <int kChunk>
__device__ void ChunkLogGates(const float* log_gate, int kv_heads, int kv_head, int64_t first_row,
                              int n, float* out) {
  // Lane l sums tokens [l·kChunk/32, (l+1)·kChunk/32), then the lanes' totals are scanned.
  constexpr int kPerLane = kChunk / 32;
  const int lane = threadIdx.x % 32;
  float values[kPerLane];
  float total = 0.0f;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int t = lane * kPerLane + i;
    values[i] = log_gate && t < n ? log_gate[(first_row + t) * kv_heads + kv_head] : 0.0f;
    total += values[i];
  }
  float before = total;
  for (int offset = 1; offset < 32; offset *= 2) {
    const float other = __shfl_up_sync(0xffffffffu, before, offset);
    if (lane >= offset) before += other;
  }
  float running = before - total;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    running += values[i];
    out[lane * kPerLane + i] = running;
  }
}

}  // namespace sympow::kernels
