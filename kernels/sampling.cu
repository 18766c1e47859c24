#include <cfloat>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cuda/functional>

#include "kernels/sampling.h"

namespace sympow::kernels {
namespace {

constexpr int kSampleThreads = 512;
constexpr int kRadixBins = 256;

__device__ inline int64_t Smaller(int64_t a, int64_t b) { return a < b ? a : b; }

// Orders floats as unsigned integers: a larger key is a larger value.
__device__ inline uint32_t OrderKey(float value) {
  const uint32_t bits = __float_as_uint(value);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// Where a cut falls: every id with key > `key` is kept, and of those with key == `key` the ones
// with an id below `first_dropped_tie`.
struct Cut {
  uint32_t key = 0;
  int64_t first_dropped_tie = 0;

  __device__ bool Keeps(uint32_t k, int64_t id) const {
    return k > key || (k == key && id < first_dropped_tie);
  }
};

// The per-block workspace; one instance in shared memory.
struct Shared {
  union {
    cub::BlockReduce<float, kSampleThreads>::TempStorage reduce;
    cub::BlockScan<float, kSampleThreads>::TempStorage scan;
  } cub;
  float histogram[kRadixBins];
  uint32_t prefix;
  float above;  // weight of the keys above the prefix found so far
  float at;     // weight of the keys equal to the final prefix
  int64_t found;
  float value;
};

// The block's reduction of `value` by `op`, given to every thread.
template <typename Op>
__device__ float BlockReduceAll(Shared& shared, float value, Op op) {
  const float result = cub::BlockReduce<float, kSampleThreads>(shared.cub.reduce).Reduce(value, op);
  if (threadIdx.x == 0) shared.value = result;
  __syncthreads();
  const float all = shared.value;
  __syncthreads();
  return all;
}

__device__ float BlockMax(Shared& shared, float value) {
  return BlockReduceAll(shared, value, cuda::maximum<float>{});
}

__device__ float BlockTotal(Shared& shared, float value) {
  return BlockReduceAll(shared, value, cuda::std::plus<float>{});
}

// Adds each lane's `weight` into histogram[bin] (bin −1: nothing). Logits crowd into a few bins,
// so the lanes of a warp that share a bin sum their weights first (a tree over the lanes in rank
// order) and one of them adds the total: one shared-memory atomic per bin and warp, not per id.
__device__ void AddToHistogram(float* histogram, int bin, float weight) {
  const unsigned lane = threadIdx.x % 32;
  const unsigned peers = __match_any_sync(0xffffffffu, bin);
  float sum = weight;
  for (int step = 1; step < 32; step *= 2) {
    const unsigned source = __fns(peers, lane, step + 1);  // the peer `step` ranks above
    const float other = __shfl_sync(0xffffffffu, sum, source < 32 ? source : lane);
    if (source < 32) sum += other;
  }
  if (bin >= 0 && (peers & ((1u << lane) - 1)) == 0) atomicAdd(&histogram[bin], sum);
}

// The key at which the weights, summed from the largest key down, first reach `target`:
// four radix passes of 8 bits. `item(i, key, weight)` gives id i's key and weight (0: not a
// candidate). Leaves shared.above and shared.at for that key.
template <typename Item>
__device__ uint32_t SelectKey(Shared& shared, int64_t vocab, float target, Item item) {
  if (threadIdx.x == 0) {
    shared.prefix = 0;
    shared.above = 0.0f;
  }
  uint32_t mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < kRadixBins; b += blockDim.x) shared.histogram[b] = 0.0f;
    __syncthreads();
    const uint32_t prefix = shared.prefix;
    // Every lane runs every round (the warp-wide intrinsics need the whole warp).
    for (int64_t base = 0; base < vocab; base += blockDim.x) {
      const int64_t i = base + threadIdx.x;
      int bin = -1;
      float weight = 0.0f;
      if (i < vocab) {
        uint32_t key;
        item(i, key, weight);
        if (weight > 0.0f && (key & mask) == prefix) bin = static_cast<int>((key >> shift) & 0xff);
      }
      AddToHistogram(shared.histogram, bin, weight);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      // From the top bin down; when rounding leaves the target out of reach, the lowest
      // non-empty bin (everything is kept).
      float above = shared.above;
      int chosen = -1;
      float chosen_above = above;
      for (int b = kRadixBins - 1; b >= 0; --b) {
        if (shared.histogram[b] <= 0.0f) continue;
        chosen = b;
        chosen_above = above;
        if (above + shared.histogram[b] >= target) break;
        above += shared.histogram[b];
      }
      if (chosen < 0) chosen = 0;
      shared.prefix = prefix | (static_cast<uint32_t>(chosen) << shift);
      shared.above = chosen_above;
      shared.at = shared.histogram[chosen];
    }
    __syncthreads();
    mask |= 0xffu << shift;
  }
  return shared.prefix;
}

// The first id at which the running sum of weight(i), in id order, exceeds target_of(total);
// where rounding leaves none, the last id with any weight.
template <typename Weight, typename Target>
__device__ int64_t FirstIdPast(Shared& shared, int64_t vocab, Weight weight, Target target_of) {
  const int64_t per_thread = (vocab + blockDim.x - 1) / blockDim.x;
  const int64_t begin = Smaller(vocab, threadIdx.x * per_thread);
  const int64_t end = Smaller(vocab, begin + per_thread);
  float local = 0.0f;
  int64_t last_weighted = -1;
  for (int64_t i = begin; i < end; ++i) {
    const float w = weight(i);
    local += w;
    if (w > 0.0f) last_weighted = i;
  }
  float before = 0.0f, total = 0.0f;
  cub::BlockScan<float, kSampleThreads>(shared.cub.scan).ExclusiveSum(local, before, total);
  if (threadIdx.x == 0) shared.found = INT64_MAX;
  __syncthreads();
  const float target = target_of(total);
  if (local > 0.0f && before <= target) {
    float sum = before;
    for (int64_t i = begin; i < end; ++i) {
      sum += weight(i);
      if (sum > target) {
        atomicMin(reinterpret_cast<unsigned long long*>(&shared.found), i);
        break;
      }
    }
  }
  __syncthreads();
  if (shared.found == INT64_MAX) {
    __syncthreads();
    if (threadIdx.x == 0) shared.found = -1;
    __syncthreads();
    atomicMax(reinterpret_cast<long long*>(&shared.found), last_weighted);
    __syncthreads();
  }
  const int64_t found = shared.found < 0 ? 0 : shared.found;
  __syncthreads();
  return found;
}

// The cut that keeps `needed` of the ties at `key` (those with the lowest ids).
template <typename IsTie>
__device__ Cut CutTies(Shared& shared, int64_t vocab, uint32_t key, int64_t needed, int64_t ties,
                       IsTie is_tie) {
  if (needed >= ties) return {key, vocab};
  const int64_t last_kept = FirstIdPast(
      shared, vocab, [&](int64_t i) { return is_tie(i) ? 1.0f : 0.0f; },
      [&](float) { return static_cast<float>(needed) - 0.5f; });
  return {key, last_kept + 1};
}

__global__ void ApplyRepetitionPenalty(const float* logits, int64_t vocab,
                                       const SampleRowParams* params, const int32_t* penalized,
                                       float* scratch) {
  const SampleRowParams p = params[blockIdx.x];
  const float* raw = logits + blockIdx.x * vocab;
  float* adjusted = scratch + blockIdx.x * vocab;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) adjusted[i] = raw[i];
  __syncthreads();
  for (int64_t j = p.penalized_begin + threadIdx.x; j < p.penalized_end; j += blockDim.x) {
    const int32_t token = penalized[j];
    const float value = raw[token];
    adjusted[token] = value > 0 ? value / p.repetition_penalty : value * p.repetition_penalty;
  }
}

__global__ void __launch_bounds__(kSampleThreads)
    SampleRowsKernel(const float* logits, const float* adjusted_rows, int64_t vocab,
                     const SampleRowParams* params, int32_t* tokens, float* logprobs) {
  __shared__ Shared shared;
  const SampleRowParams p = params[blockIdx.x];
  const float* raw = logits + blockIdx.x * vocab;
  const float* adjusted = adjusted_rows + blockIdx.x * vocab;

  // log Σ exp(raw logits), for the log-prob of whatever is drawn.
  float raw_max = -FLT_MAX;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) raw_max = fmaxf(raw_max, raw[i]);
  raw_max = BlockMax(shared, raw_max);
  float raw_sum = 0.0f;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) raw_sum += expf(raw[i] - raw_max);
  const float log_normalizer = raw_max + logf(BlockTotal(shared, raw_sum));

  int64_t token;
  if (p.temperature == 0.0f) {
    const float best = [&] {
      float m = -FLT_MAX;
      for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) m = fmaxf(m, adjusted[i]);
      return BlockMax(shared, m);
    }();
    token = FirstIdPast(
        shared, vocab, [&](int64_t i) { return adjusted[i] == best ? 1.0f : 0.0f; },
        [](float) { return 0.5f; });
  } else {
    auto scaled = [&](int64_t i) { return adjusted[i] / p.temperature; };
    float top = -FLT_MAX;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) top = fmaxf(top, scaled(i));
    top = BlockMax(shared, top);
    auto weight_of = [&](float s) { return expf(s - top); };

    Cut top_k{0, vocab};  // keeps everything
    if (p.top_k > 0 && p.top_k < vocab) {
      const uint32_t key = SelectKey(shared, vocab, static_cast<float>(p.top_k),
                                     [&](int64_t i, uint32_t& k, float& w) {
                                       k = OrderKey(scaled(i));
                                       w = 1.0f;
                                     });
      const int64_t needed = p.top_k - static_cast<int64_t>(shared.above);
      const int64_t ties = static_cast<int64_t>(shared.at);
      __syncthreads();
      top_k = CutTies(shared, vocab, key, needed, ties,
                      [&](int64_t i) { return OrderKey(scaled(i)) == key; });
    }
    Cut top_p{0, vocab};
    if (p.top_p < 1.0f) {
      float kept_mass = 0.0f;
      for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float s = scaled(i);
        if (top_k.Keeps(OrderKey(s), i)) kept_mass += weight_of(s);
      }
      const float target = p.top_p * BlockTotal(shared, kept_mass);
      const uint32_t key = SelectKey(shared, vocab, target, [&](int64_t i, uint32_t& k, float& w) {
        const float s = scaled(i);
        k = OrderKey(s);
        w = top_k.Keeps(k, i) ? weight_of(s) : 0.0f;
      });
      const float above = shared.above;
      const float at = shared.at;
      __syncthreads();
      auto is_tie = [&](int64_t i) {
        const uint32_t k = OrderKey(scaled(i));
        return k == key && top_k.Keeps(k, i);
      };
      // Ties weigh the same: count them, then keep as many as reach the target.
      float tie_count = 0.0f;
      for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
        tie_count += is_tie(i) ? 1.0f : 0.0f;
      const int64_t ties = static_cast<int64_t>(BlockTotal(shared, tie_count));
      const float tie_weight = ties > 0 ? at / static_cast<float>(ties) : 1.0f;
      const int64_t needed =
          static_cast<int64_t>(fmaxf(1.0f, ceilf((target - above) / tie_weight)));
      top_p = CutTies(shared, vocab, key, needed, ties, is_tie);
    }
    token = FirstIdPast(
        shared, vocab,
        [&](int64_t i) {
          const float s = scaled(i);
          const uint32_t k = OrderKey(s);
          const float w = weight_of(s);
          return top_k.Keeps(k, i) && top_p.Keeps(k, i) && w >= p.min_p ? w : 0.0f;
        },
        [&](float total) { return static_cast<float>(p.uniform * total); });
  }
  if (threadIdx.x == 0) {
    tokens[blockIdx.x] = static_cast<int32_t>(token);
    logprobs[blockIdx.x] = raw[token] - log_normalizer;
  }
}

}  // namespace

void SampleRows(const float* logits, int64_t rows, int64_t vocab, const SampleRowParams* params,
                const int32_t* penalized, float* scratch, int32_t* tokens, float* logprobs,
                cudaStream_t stream) {
  if (rows == 0) return;
  const float* adjusted = logits;
  if (penalized != nullptr) {
    ApplyRepetitionPenalty<<<rows, 256, 0, stream>>>(logits, vocab, params, penalized, scratch);
    adjusted = scratch;
  }
  SampleRowsKernel<<<rows, kSampleThreads, 0, stream>>>(logits, adjusted, vocab, params, tokens,
                                                        logprobs);
}

}  // namespace sympow::kernels
