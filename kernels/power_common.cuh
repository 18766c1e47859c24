// Device helpers shared by the power-attention kernels.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/power_attention.h"

namespace sympow::kernels {

// One state element as stored (fp32 or bf16), in fp32.
__device__ inline float LoadOne(const float* p) { return *p; }
__device__ inline float LoadOne(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ inline void StoreOne(float* p, float v) { *p = v; }
__device__ inline void StoreOne(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

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

// Inclusive scan of one value per lane over a whole warp: the sum of this lane's and every
// earlier lane's (kFromRight false), or of this lane's and every later lane's (kFromRight true).
template <bool kFromRight>
__device__ inline float WarpInclusiveScan(float value) {
  const int lane = threadIdx.x % 32;
  for (int offset = 1; offset < 32; offset *= 2) {
    if (kFromRight) {
      const float other = __shfl_down_sync(0xffffffffu, value, offset);
      if (lane + offset < 32) value += other;
    } else {
      const float other = __shfl_up_sync(0xffffffffu, value, offset);
      if (lane >= offset) value += other;
    }
  }
  return value;
}

// Lane l's run of kPerLane consecutive tokens t in [l·kPerLane, (l+1)·kPerLane): values[i] =
// from[t·stride], 0 at or past n and everywhere when `from` is null; returns their sum (the
// lane's part of a warp scan).
template <int kPerLane>
__device__ inline float LoadLaneRun(const float* from, int64_t stride, int n,
                                    float (&values)[kPerLane]) {
  const int lane = threadIdx.x % 32;
  float total = 0.0f;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int t = lane * kPerLane + i;
    values[i] = from != nullptr && t < n ? from[t * stride] : 0.0f;
    total += values[i];
  }
  return total;
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
  const float total = LoadLaneRun<kPerLane>(
      log_gate == nullptr ? nullptr : log_gate + first_row * kv_heads + kv_head, kv_heads, n,
      values);
  float running = WarpInclusiveScan<false>(total) - total;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    running += values[i];
    out[lane * kPerLane + i] = running;
  }
}

// Σ_{j>s} log_gates[j] exponentiated, for s < n ≤ kMaxBufferTokens, into decay[s]; returns the
// exponentiated sum of all n. Called by one whole warp: lane l sums kPerLane consecutive tokens,
// the lanes' totals are summed from the right (a suffix scan), then each lane fills its own.
__device__ inline float DecaysToNow(const float* log_gates, int n, float* decay) {
  constexpr int kPerLane = kMaxBufferTokens / 32;
  const int lane = threadIdx.x % 32;
  float values[kPerLane];
  const float total = LoadLaneRun<kPerLane>(log_gates, 1, n, values);
  const float from_here = WarpInclusiveScan<true>(total);  // this lane's tokens and later lanes'
  float later = from_here - total;
#pragma unroll
  for (int i = kPerLane - 1; i >= 0; --i) {
    const int s = lane * kPerLane + i;
    if (s < n) decay[s] = expf(later);
    later += values[i];
  }
  return expf(__shfl_sync(0xffffffffu, from_here, 0));
}

}  // namespace sympow::kernels
