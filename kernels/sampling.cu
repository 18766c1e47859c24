#include <cooperative_groups.h>

#include <cfloat>
#include <climits>

#include "kernels/sampling.h"

namespace sympow::kernels {
namespace {

namespace cg = cooperative_groups;

constexpr int kSampleThreads = 512;
constexpr int kSampleWarps = kSampleThreads / 32;
// A row is shared by a cluster of blocks (a portable cluster size), each holding its slice of the
// scaled logits in shared memory: one row keeps eight SMs busy, and every pass after the first
// reads shared memory, not global.
constexpr int kClusterBlocks = 8;
constexpr int kRadixBins = 256;
constexpr int kBinsPerLane = kRadixBins / 32;
constexpr unsigned kAllLanes = 0xffffffffu;
// SelectKey's fine digits: 8 a unit of scaled logit, so 256 of them span 32 units (weights down to
// e^-32 of the top's; the last digit holds the rest).
constexpr float kFineDigitsPerLogit = 8.0f;
constexpr int kMaxCandidates = 2048;  // a fine digit's ids a block lists (SelectKey)
constexpr int kLoadBatch = 8;         // global loads a thread has in flight at once

// Ids of a row each block of its cluster holds (the last block fewer).
__host__ __device__ constexpr int64_t SliceIds(int64_t vocab) {
  return (vocab + kClusterBlocks - 1) / kClusterBlocks;
}

// Orders floats as unsigned integers: a larger key is a larger value.
__device__ inline uint32_t OrderKey(float value) {
  const uint32_t bits = __float_as_uint(value);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// Where a cut falls: every id with key > `key` is kept, and of those with key == `key` the ones
// with an id below `first_dropped_tie`.
struct Cut {
  uint32_t key = 0;
  int first_dropped_tie = 0;

  __device__ bool Keeps(uint32_t k, int id) const {
    return k > key || (k == key && id < first_dropped_tie);
  }
};

// log Σ exp(x) as it is accumulated: the largest x and the sum of exp(x − largest).
struct LogSumExp {
  float max = -FLT_MAX;
  float sum = 0.0f;

  __device__ void Add(float x) {
    if (x > max) {
      sum = sum * expf(max - x) + 1.0f;
      max = x;
    } else {
      sum += expf(x - max);
    }
  }
  __device__ static LogSumExp Combine(LogSumExp a, LogSumExp b) {
    const float largest = fmaxf(a.max, b.max);
    return {largest, a.sum * expf(a.max - largest) + b.sum * expf(b.max - largest)};
  }
};

// The first pass's findings: the raw logits' log-normaliser and the largest scaled logit.
struct RowStats {
  LogSumExp raw;
  float top = -FLT_MAX;

  __device__ static RowStats Combine(RowStats a, RowStats b) {
    return {LogSumExp::Combine(a.raw, b.raw), fmaxf(a.top, b.top)};
  }
};

// A block's weight in id order and its last id with any weight.
struct WeightSpan {
  float sum = 0.0f;
  int last_weighted = -1;
};

__device__ inline float ShuffleXor(float v, int offset) {
  return __shfl_xor_sync(kAllLanes, v, offset);
}
__device__ inline int ShuffleXor(int v, int offset) {
  return __shfl_xor_sync(kAllLanes, v, offset);
}
__device__ inline RowStats ShuffleXor(RowStats v, int offset) {
  return {{ShuffleXor(v.raw.max, offset), ShuffleXor(v.raw.sum, offset)},
          ShuffleXor(v.top, offset)};
}

// A digit chosen from a histogram (or, from SelectKey, the key): the weight above it and at it,
// and the target its search was for.
struct Choice {
  uint32_t digit;
  float above;
  float at;
  float target;
};

// A block's workspace. What it shares with the rest of its cluster (histogram, published) is
// double-buffered: exchange n writes buffer n % 2, and no block writes it again before every block
// has passed exchange n + 1's barrier, which it reaches only after reading exchange n. One cluster
// barrier per exchange.
struct Workspace {
  float histogram[2][kRadixBins];
  float combined[kRadixBins];  // the cluster's sums of this exchange's histograms
  alignas(16) unsigned char published[2][16];
  alignas(16) unsigned char warp_partial[kSampleWarps][16];
  float warp_weight[kSampleWarps];
  int warp_last_weighted[kSampleWarps];
  int found;
  Choice choice;
  int candidate_count;
  int candidates[kMaxCandidates];  // ids (in the block's slice) of one fine digit
};

// The cluster of blocks sampling one row, seen from one thread.
class RowCluster {
 public:
  __device__ RowCluster(Workspace& workspace, int vocab)
      : workspace_(workspace), cluster_(cg::this_cluster()) {
    const int slice = static_cast<int>(SliceIds(vocab));
    rank_ = static_cast<int>(cluster_.block_rank());
    begin_ = rank_ * slice;
    count_ = max(0, min(vocab - begin_, slice));
  }

  __device__ int rank() const { return rank_; }
  // This block's ids are [begin(), begin() + count()).
  __device__ int begin() const { return begin_; }
  __device__ int count() const { return count_; }

  // Combines every thread's `value` over the cluster; every thread gets the result.
  template <typename T, typename Combine>
  __device__ T Reduce(T value, Combine combine) {
    static_assert(sizeof(T) <= sizeof(workspace_.warp_partial[0]), "a warp's partial slot");
    for (int offset = 16; offset > 0; offset /= 2)
      value = combine(value, ShuffleXor(value, offset));
    T* partial = reinterpret_cast<T*>(workspace_.warp_partial);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = value;
    __syncthreads();
    if (threadIdx.x == 0) {
      T block = partial[0];
      for (int w = 1; w < kSampleWarps; ++w) block = combine(block, partial[w]);
      Publish(block);
    }
    Sync();
    T all = Peer<T>(0);
    for (int r = 1; r < kClusterBlocks; ++r) all = combine(all, Peer<T>(r));
    NextExchange();
    return all;
  }

  // One exchange: thread 0 of each block publishes, Sync, then any thread reads Peer(rank) and
  // sums PeerHistogram(rank, bin) until NextExchange.
  template <typename T>
  __device__ void Publish(const T& value) {
    static_assert(sizeof(T) <= sizeof(workspace_.published[0]), "a block's published slot");
    *reinterpret_cast<T*>(workspace_.published[parity_]) = value;
  }
  __device__ float* Histogram() { return workspace_.histogram[parity_]; }
  __device__ void Sync() { cluster_.sync(); }
  template <typename T>
  __device__ T Peer(int rank) {
    return *reinterpret_cast<const T*>(
        cluster_.map_shared_rank(workspace_.published[parity_], rank));
  }
  __device__ float PeerHistogram(int rank, int bin) {
    return cluster_.map_shared_rank(workspace_.histogram[parity_], rank)[bin];
  }
  __device__ void NextExchange() { parity_ ^= 1; }

 private:
  Workspace& workspace_;
  cg::cluster_group cluster_;
  int rank_ = 0;
  int begin_ = 0;
  int count_ = 0;
  int parity_ = 0;
};

// Warp 0 picks the digit from the cluster's histogram (workspace.combined): from the top bin down,
// the first whose weight brings the sum from `above` to target_of(the histograms' total); when
// rounding leaves the target out of reach, the lowest non-empty bin (everything is kept). Lane l
// sums bins 255 − 8l down to 248 − 8l.
template <typename TargetOf>
__device__ void ChooseDigit(Workspace& workspace, float above, TargetOf target_of) {
  const int lane = threadIdx.x % 32;
  float weight[kBinsPerLane];
  float lane_weight = 0.0f;
  for (int k = 0; k < kBinsPerLane; ++k) {
    const int bin = kRadixBins - 1 - (lane * kBinsPerLane + k);
    weight[k] = workspace.combined[bin];
    lane_weight += weight[k];
  }
  float through = lane_weight;  // the weight of this lane's bins and every higher lane's
  for (int offset = 1; offset < 32; offset *= 2) {
    const float higher = __shfl_up_sync(kAllLanes, through, offset);
    if (lane >= offset) through += higher;
  }
  const float target = target_of(__shfl_sync(kAllLanes, through, 31));
  float running = above + through - lane_weight;
  int hit = -1, lowest = -1;
  float hit_above = 0.0f, lowest_above = 0.0f;
  for (int k = 0; k < kBinsPerLane; ++k) {
    if (weight[k] > 0.0f && hit < 0) {
      lowest = k;
      lowest_above = running;
      if (running + weight[k] >= target) {
        hit = k;
        hit_above = running;
      }
    }
    running += weight[k];
  }
  const unsigned hits = __ballot_sync(kAllLanes, hit >= 0);
  const unsigned nonempty = __ballot_sync(kAllLanes, lowest >= 0);
  // All empty: bin 0 (lane 31's last), with nothing at it.
  const int source = hits != 0 ? __ffs(hits) - 1 : (nonempty != 0 ? 31 - __clz(nonempty) : 31);
  int chosen = hits != 0 ? hit : lowest;
  float chosen_above = hits != 0 ? hit_above : lowest_above;
  if (chosen < 0) {
    chosen = kBinsPerLane - 1;
    chosen_above = running;
  }
  float at = 0.0f;
  for (int k = 0; k < kBinsPerLane; ++k) at = k == chosen ? weight[k] : at;
  chosen = __shfl_sync(kAllLanes, chosen, source);
  chosen_above = __shfl_sync(kAllLanes, chosen_above, source);
  at = __shfl_sync(kAllLanes, at, source);
  if (lane == 0) {
    workspace.choice = {static_cast<uint32_t>(kRadixBins - 1 - (source * kBinsPerLane + chosen)),
                        chosen_above, at, target};
  }
}

// One histogram over the cluster and the digit ChooseDigit picks from it. `item(c, digit,
// weight)` gives candidate c's digit (−1: none) and weight; c runs over [0, candidates) in each
// block. Candidates crowd into few digits only where there are few of them (see SelectKey), so
// plain shared-memory atomics serialise little.
template <typename Item, typename TargetOf>
__device__ Choice HistogramChoice(RowCluster& row, Workspace& workspace, int candidates, Item item,
                                  float above, TargetOf target_of) {
  float* histogram = row.Histogram();
  for (int b = threadIdx.x; b < kRadixBins; b += kSampleThreads) histogram[b] = 0.0f;
  __syncthreads();
  for (int c = threadIdx.x; c < candidates; c += kSampleThreads) {
    int digit;
    float weight;
    item(c, digit, weight);
    if (digit >= 0 && weight > 0.0f) atomicAdd(&histogram[digit], weight);
  }
  row.Sync();
  // Every thread sums a bin over the cluster: the remote reads are spread and all in flight.
  for (int b = threadIdx.x; b < kRadixBins; b += kSampleThreads) {
    float sum = 0.0f;
    for (int r = 0; r < kClusterBlocks; ++r) sum += row.PeerHistogram(r, b);
    workspace.combined[b] = sum;
  }
  __syncthreads();
  if (threadIdx.x < 32) ChooseDigit(workspace, above, target_of);
  __syncthreads();
  const Choice choice = workspace.choice;
  row.NextExchange();
  return choice;
}

// The fine digit of a scaled logit s below the row's largest, `top`: 255 at the top, one less
// for every 1/kFineDigitsPerLogit below it, 0 from kRadixBins/kFineDigitsPerLogit below on. It
// never rises as s falls, so the ids of one fine digit lie between the keys of its neighbours.
__device__ inline int FineDigit(float s, float top) {
  const float below = fminf((top - s) * kFineDigitsPerLogit, static_cast<float>(kRadixBins - 1));
  return kRadixBins - 1 - static_cast<int>(below);
}

// The key at which weight(e), summed from the largest key down, first reaches target_of(total
// weight), and the weights above and at it. First a histogram of fine digits (spread evenly over
// the logits: atomics rarely collide), then four radix passes of 8 bits over the keys of the one
// fine digit where the target falls, compacted into a short list when they fit (they crowd into
// one radix bin, and few are left after the first pass).
template <typename Weight, typename TargetOf>
__device__ Choice SelectKey(RowCluster& row, Workspace& workspace, const float* scaled, float top,
                            Weight weight, TargetOf target_of) {
  if (threadIdx.x == 0) workspace.candidate_count = 0;
  const Choice fine = HistogramChoice(
      row, workspace, row.count(),
      [&](int e, int& digit, float& w) {
        w = weight(e);
        digit = FineDigit(scaled[e], top);
      },
      0.0f, target_of);
  auto in_fine_digit = [&](int e) {
    return FineDigit(scaled[e], top) == static_cast<int>(fine.digit) && weight(e) > 0.0f;
  };
  for (int e = threadIdx.x; e < row.count(); e += kSampleThreads) {
    if (in_fine_digit(e)) {
      const int slot = atomicAdd(&workspace.candidate_count, 1);
      if (slot < kMaxCandidates) workspace.candidates[slot] = e;
    }
  }
  __syncthreads();
  // Too many to list (a flat row): every id of the block is a candidate, filtered as it goes.
  const bool listed = workspace.candidate_count <= kMaxCandidates;
  const int candidates = listed ? workspace.candidate_count : row.count();
  Choice choice = fine;
  uint32_t prefix = 0, mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    choice = HistogramChoice(
        row, workspace, candidates,
        [&](int c, int& digit, float& w) {
          const int e = listed ? workspace.candidates[c] : c;
          const uint32_t key = OrderKey(scaled[e]);
          const bool candidate = in_fine_digit(e) && (key & mask) == prefix;
          digit = candidate ? static_cast<int>((key >> shift) & 0xff) : -1;
          w = candidate ? weight(e) : 0.0f;
        },
        choice.above, [&](float) { return fine.target; });
    prefix |= choice.digit << shift;
    mask |= 0xffu << shift;
  }
  choice.digit = prefix;
  return choice;
}

// The first id at which the running sum of weight(e), in id order, exceeds target_of(total);
// where rounding leaves none, the last id with any weight. Each warp owns a contiguous part of
// the block's slice; the part where the sum crosses the target is walked 32 ids at a time.
template <typename Weight, typename Target>
__device__ int FirstIdPast(RowCluster& row, Workspace& workspace, Weight weight, Target target_of) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int per_warp = (row.count() + 32 * kSampleWarps - 1) / (32 * kSampleWarps) * 32;
  const int warp_begin = min(row.count(), warp * per_warp);
  const int warp_end = min(row.count(), warp_begin + per_warp);
  float sum = 0.0f;
  int last_weighted = -1;
  for (int e = warp_begin + lane; e < warp_end; e += 32) {
    const float w = weight(e);
    sum += w;
    if (w > 0.0f) last_weighted = row.begin() + e;
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += ShuffleXor(sum, offset);
  last_weighted = __reduce_max_sync(kAllLanes, last_weighted);
  if (lane == 0) {
    workspace.warp_weight[warp] = sum;
    workspace.warp_last_weighted[warp] = last_weighted;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    WeightSpan block;
    for (int w = 0; w < kSampleWarps; ++w) {
      block.sum += workspace.warp_weight[w];
      block.last_weighted = max(block.last_weighted, workspace.warp_last_weighted[w]);
    }
    row.Publish(block);
    workspace.found = INT_MAX;
  }
  row.Sync();
  float total = 0.0f, before = 0.0f;
  last_weighted = -1;
  for (int r = 0; r < kClusterBlocks; ++r) {
    const WeightSpan peer = row.Peer<WeightSpan>(r);
    if (r < row.rank()) before += peer.sum;
    total += peer.sum;
    last_weighted = max(last_weighted, peer.last_weighted);
  }
  row.NextExchange();
  const float target = target_of(total);
  for (int w = 0; w < warp; ++w) before += workspace.warp_weight[w];
  if (workspace.warp_weight[warp] > 0.0f && before <= target) {
    for (int base = warp_begin; base < warp_end; base += 32) {
      const int e = base + lane;
      float through = e < warp_end ? weight(e) : 0.0f;  // inclusive sum over the lanes
      for (int offset = 1; offset < 32; offset *= 2) {
        const float lower = __shfl_up_sync(kAllLanes, through, offset);
        if (lane >= offset) through += lower;
      }
      const unsigned past = __ballot_sync(kAllLanes, e < warp_end && before + through > target);
      if (past != 0) {
        if (lane == 0) atomicMin(&workspace.found, row.begin() + base + __ffs(past) - 1);
        break;
      }
      before += __shfl_sync(kAllLanes, through, 31);
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) row.Publish(workspace.found);
  row.Sync();
  int found = INT_MAX;
  for (int r = 0; r < kClusterBlocks; ++r) found = min(found, row.Peer<int>(r));
  row.NextExchange();
  if (found == INT_MAX) found = max(last_weighted, 0);
  return found;
}

// The cut that keeps `needed` of the ties at `key` (those with the lowest ids).
template <typename IsTie>
__device__ Cut CutTies(RowCluster& row, Workspace& workspace, int vocab, uint32_t key, int needed,
                       int ties, IsTie is_tie) {
  if (needed >= ties) return {key, vocab};
  const int last_kept = FirstIdPast(
      row, workspace, [&](int e) { return is_tie(e) ? 1.0f : 0.0f; },
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

// A cluster of kClusterBlocks blocks a row; dynamic shared memory holds the block's slice of the
// scaled logits.
__global__ void __cluster_dims__(kClusterBlocks, 1, 1) __launch_bounds__(kSampleThreads, 2)
    SampleRowsKernel(const float* logits, const float* adjusted_rows, int vocab,
                     const SampleRowParams* params, int32_t* tokens, float* logprobs) {
  extern __shared__ float scaled[];
  __shared__ Workspace workspace;
  RowCluster row(workspace, vocab);
  const int64_t row_index = blockIdx.x / kClusterBlocks;
  const SampleRowParams p = params[row_index];
  const float* raw = logits + row_index * vocab;
  const float* adjusted = adjusted_rows + row_index * vocab;

  // The block's slice into shared memory, kLoadBatch loads a thread in flight at once.
  RowStats mine;
  for (int base = 0; base < row.count(); base += kLoadBatch * kSampleThreads) {
    float x[kLoadBatch], a[kLoadBatch];
#pragma unroll
    for (int j = 0; j < kLoadBatch; ++j) {
      const int e = base + j * kSampleThreads + static_cast<int>(threadIdx.x);
      const int id = row.begin() + min(e, row.count() - 1);
      x[j] = raw[id];
      a[j] = adjusted == raw ? x[j] : adjusted[id];
    }
#pragma unroll
    for (int j = 0; j < kLoadBatch; ++j) {
      const int e = base + j * kSampleThreads + static_cast<int>(threadIdx.x);
      if (e >= row.count()) break;
      const float s = p.temperature == 0.0f ? a[j] : a[j] / p.temperature;
      scaled[e] = s;
      mine.raw.Add(x[j]);
      mine.top = fmaxf(mine.top, s);
    }
  }
  const RowStats stats =
      row.Reduce(mine, [](RowStats a, RowStats b) { return RowStats::Combine(a, b); });
  const float log_normalizer = stats.raw.max + logf(stats.raw.sum);
  const float top = stats.top;

  int token;
  if (p.temperature == 0.0f) {
    int first_best = INT_MAX;
    for (int e = threadIdx.x; e < row.count(); e += kSampleThreads) {
      if (scaled[e] == top) first_best = min(first_best, row.begin() + e);
    }
    token = row.Reduce(first_best, [](int a, int b) { return min(a, b); });
  } else {
    auto weight_of = [&](float s) { return expf(s - top); };
    Cut top_k{0, vocab};  // keeps everything
    if (p.top_k > 0 && p.top_k < vocab) {
      const Choice cut = SelectKey(
          row, workspace, scaled, top, [](int) { return 1.0f; },
          [&](float) { return static_cast<float>(p.top_k); });
      const int needed = p.top_k - static_cast<int>(cut.above);
      top_k = CutTies(row, workspace, vocab, cut.digit, needed, static_cast<int>(cut.at),
                      [&](int e) { return OrderKey(scaled[e]) == cut.digit; });
    }
    auto kept_by_top_k = [&](int e) { return top_k.Keeps(OrderKey(scaled[e]), row.begin() + e); };
    Cut top_p{0, vocab};
    if (p.top_p < 1.0f) {
      const Choice cut = SelectKey(
          row, workspace, scaled, top,
          [&](int e) { return kept_by_top_k(e) ? weight_of(scaled[e]) : 0.0f; },
          [&](float kept_mass) { return p.top_p * kept_mass; });
      auto is_tie = [&](int e) { return OrderKey(scaled[e]) == cut.digit && kept_by_top_k(e); };
      // Ties weigh the same: count them, then keep as many as reach the target.
      int tie_count = 0;
      for (int e = threadIdx.x; e < row.count(); e += kSampleThreads) tie_count += is_tie(e);
      const int ties = row.Reduce(tie_count, [](int a, int b) { return a + b; });
      const float tie_weight = ties > 0 ? cut.at / static_cast<float>(ties) : 1.0f;
      const int needed =
          static_cast<int>(fmaxf(1.0f, ceilf((cut.target - cut.above) / tie_weight)));
      top_p = CutTies(row, workspace, vocab, cut.digit, needed, ties, is_tie);
    }
    token = FirstIdPast(
        row, workspace,
        [&](int e) {
          const float s = scaled[e];
          const uint32_t k = OrderKey(s);
          const int id = row.begin() + e;
          const float w = weight_of(s);
          return top_k.Keeps(k, id) && top_p.Keeps(k, id) && w >= p.min_p ? w : 0.0f;
        },
        [&](float total) { return static_cast<float>(p.uniform * total); });
  }
  row.Sync();  // no block leaves while another may still read its shared memory
  if (row.rank() == 0 && threadIdx.x == 0) {
    tokens[row_index] = token;
    logprobs[row_index] = raw[token] - log_normalizer;
  }
}

}  // namespace

int64_t MaxSampledVocab() {
  static const int64_t max_vocab = [] {
    int device = 0, optin = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    cudaFuncAttributes attributes{};
    cudaFuncGetAttributes(&attributes, SampleRowsKernel);
    const int64_t slice = (optin - static_cast<int64_t>(attributes.sharedSizeBytes)) /
                          static_cast<int64_t>(sizeof(float));
    return slice * kClusterBlocks;
  }();
  return max_vocab;
}

void SampleRows(const float* logits, int64_t rows, int64_t vocab, const SampleRowParams* params,
                const int32_t* penalized, float* scratch, int32_t* tokens, float* logprobs,
                cudaStream_t stream) {
  if (rows == 0) return;
  const float* adjusted = logits;
  if (penalized != nullptr) {
    ApplyRepetitionPenalty<<<rows, 256, 0, stream>>>(logits, vocab, params, penalized, scratch);
    adjusted = scratch;
  }
  const size_t slice_bytes = static_cast<size_t>(SliceIds(vocab)) * sizeof(float);
  cudaFuncSetAttribute(SampleRowsKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       static_cast<int>(slice_bytes));
  SampleRowsKernel<<<static_cast<unsigned>(rows * kClusterBlocks), kSampleThreads, slice_bytes,
                     stream>>>(logits, adjusted, static_cast<int>(vocab), params, tokens, logprobs);
}

}  // namespace sympow::kernels
