// Power attention on the CPU: chunked prefill (attention form in a chunk, state form across
// chunks) and batched one-token decode from the state and its buffer of recent tokens (folded
// into the state when full), for fp32 or bf16 state storage.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "model/backend.h"
#include "model/config.h"
#include "model/expansion.h"
#include "model/state_layout.h"

namespace sympow {

class CpuPowerAttention {
 public:
  explicit CpuPowerAttention(const ModelConfig& config);

  // Runs every segment of `args`; `slot_data[i]` is the state of args.segments[i].
  void Run(const PowerAttentionArgs& args, std::span<std::byte* const> slot_data);
  // Folds every layer's and kv head's decode buffer of `state` into its S and z.
  void FoldDecodeBuffers(std::byte* state) const;

 private:
  struct ChunkBuffers;

  void PrefillSegment(const PowerAttentionArgs& args, const AttentionSegment& segment,
                      std::byte* state);
  void PrefillChunk(const PowerAttentionArgs& args, int64_t first_row, int64_t rows,
                    int64_t kv_head, float* S, float* z, ChunkBuffers& buffers);
  // All one-row segments at once, parallel over (segment, kv head).
  void DecodeRows(const PowerAttentionArgs& args, std::span<const AttentionSegment* const> rows,
                  std::span<std::byte* const> states);
  // Adds the row's token to the head's buffer and writes its outputs from S, z (read only) and
  // the buffer.
  template <typename Storage>
  void DecodeHead(const PowerAttentionArgs& args, int64_t row, int64_t kv_head, const Storage* S,
                  const Storage* z, const DecodeBufferView& buffer, float* scratch);
  // Advances fp32 S and z past n tokens: decays them by exp(G[n−1]) and adds each token's
  // φ(k)vᵀ decayed to the last, exp(G[n−1] − G[s]). Scales `values` in place.
  void CarryPast(const float* key_features, float* values, const float* G, int64_t n, float* S,
                 float* z, ChunkBuffers& buffers) const;
  // Folds every token of the buffer into fp32 S and z and empties it.
  void FoldBuffer(const DecodeBufferView& buffer, float* S, float* z, ChunkBuffers& buffers) const;

  StateLayout layout_;
  SymmetricExpansion expansion_;
  int64_t num_heads_;
  int64_t group_;  // query heads per kv head
  int64_t head_dim_;
  int degree_;
  float scale_;
  float scale_pow_;  // scale^p, applied when reading the state
};

}  // namespace sympow
