// What the decode stream kernels share (StreamStates in kernels/power_decode.cu, StreamStatesMma in
// kernels/decode_stream_mma.cuh): how a step's states are cut into items, and a block's start and
// end on one (its group's query rows into shared memory, its sums into the scratch).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/decode_common.cuh"
#include "kernels/power_attention.h"

namespace sympow::kernels {

// Dynamic shared memory a launch gets without opting in (cudaFuncSetAttribute).
constexpr size_t kDefaultSharedBytes = 48 * 1024;

// How the states of a step are cut into items: `tiles` tiles of `tile_features` features (the last
// one shorter) per (row, kv head), numbered tile-fastest, a block each.
struct TilePlan {
  int tile_features;
  int tiles;
  int64_t items;
};

// Tiles of at most 128 KB of state amortise a block's set-up (q, φ(q) of its features, the sums'
// atomics) over more state; swept on an H200 for the kernel that rewrote the state every token
// (bench/results/raw/decode_tile_sweep.log): 128 KB beat 64 KB by 2–5 points of copy bandwidth
// and 32 KB by up to 30 on the 14B shape. A block's set-up
// costs about as much as streaming kSetupBytesPerHead more state for each query head of its group.
constexpr int64_t kTileBytes = 128 * 1024;
constexpr int64_t kSetupBytesPerHead = 4 * 1024;
constexpr int kMinTileFeatures = 64;

// Equal tiles, a multiple of `rounding` features, whose φ fits `most_features`. Blocks run in
// waves of `wave`: the tile count is the one with the least estimated time, ceil(blocks / wave) ×
// (tile bytes + set-up), so that a batch of few sessions is cut finer and no last wave runs mostly
// empty.
inline TilePlan PlanTiles(const PowerAttentionShape& shape, int64_t count, int64_t row_bytes,
                          int rounding, int64_t most_features, int64_t wave,
                          int64_t extra_setup_bytes = 0, int64_t most_tile_bytes = kTileBytes) {
  const int group = shape.num_heads / shape.num_kv_heads;
  const int64_t D = shape.expanded_dim;
  auto round_up = [&](int64_t features) { return (features + rounding - 1) / rounding * rounding; };
  const int64_t largest_tile = std::max<int64_t>(rounding, most_features / rounding * rounding);
  const int64_t tile_bytes = std::min(most_tile_bytes, largest_tile * row_bytes);
  const int64_t fewest_tiles = (D * row_bytes + tile_bytes - 1) / tile_bytes;
  const int64_t pairs = count * shape.num_kv_heads;
  // Beyond two waves' worth of extra tiles, finer cuts only add set-up.
  const int64_t most_tiles =
      std::max(fewest_tiles, std::min(D / kMinTileFeatures, fewest_tiles + 2 * wave / pairs));
  int64_t best_features = 0;
  double best_time = 0.0;
  for (int64_t tiles = fewest_tiles; tiles <= most_tiles; ++tiles) {
    const int64_t features = round_up((D + tiles - 1) / tiles);
    const int64_t blocks = pairs * ((D + features - 1) / features);
    const double time =
        static_cast<double>((blocks + wave - 1) / wave) *
        static_cast<double>(features * row_bytes + kSetupBytesPerHead * group + extra_setup_bytes);
    if (best_features == 0 || time < best_time) {
      best_features = features;
      best_time = time;
    }
  }
  const int tiles = static_cast<int>((D + best_features - 1) / best_features);
  return {static_cast<int>(best_features), tiles, pairs * tiles};
}

// The block's item: where its tile of S and z starts, its features, its query heads.
struct Item {
  void* state;  // the kv head's S; its z follows D × d elements on (only a fold writes them)
  int first_feature;
  int tile;       // features in this tile
  int64_t head;   // r · H + the kv head's first query head, r the decode row's index (scratch)
  int64_t query;  // the same head in the q rows
  DecodeRow decode;
  int kv_head;
};

// Features [first, first + tile) of (decode row, kv head) pair `pair`.
template <typename Storage>
__device__ inline Item PairItem(const PowerAttentionShape& shape, const DecodeRow* decode_rows,
                                int64_t state_offset, int64_t pair, int first, int tile) {
  const int64_t r = pair / shape.num_kv_heads;
  const int h = static_cast<int>(pair - r * shape.num_kv_heads);
  const DecodeRow decode = decode_rows[r];
  const int group = shape.num_heads / shape.num_kv_heads;
  const int64_t kv_head_bytes =
      int64_t{shape.expanded_dim} * (shape.head_dim + 1) * sizeof(Storage);
  return {static_cast<char*>(decode.state) + state_offset + h * kv_head_bytes,
          first,
          tile,
          r * shape.num_heads + h * group,
          decode.row * shape.num_heads + h * group,
          decode,
          h};
}

// The block's start on an item: its group's query rows into q [group × q_stride], its sums
// [group × d] zeroed; ends with a barrier.
__device__ inline void LoadQueriesClearSums(const Item& item, const float* q_rows, int d, int group,
                                            int q_stride, float* q, float* sums) {
  for (int i = threadIdx.x; i < group * d; i += blockDim.x) {
    q[i / d * q_stride + i % d] = q_rows[item.query * d + i];
    sums[i] = 0.0f;
  }
  __syncthreads();
}

// Adds the block's sums (after a barrier) into the scratch's numerators.
__device__ inline void AddNumerators(const PowerAttentionShape& shape, const Item& item,
                                     const float* sums, const DecodeScratch& scratch) {
  const int group_columns = shape.num_heads / shape.num_kv_heads * shape.head_dim;
  for (int i = threadIdx.x; i < group_columns; i += blockDim.x) {
    atomicAdd(&scratch.numerators[item.head * shape.head_dim + i], sums[i]);
  }
}

}  // namespace sympow::kernels
