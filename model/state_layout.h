// Where each layer's and kv head's (S, z) and decode buffer sit inside one session's state.
#pragma once

#include <cstddef>
#include <cstdint>

#include <span>

#include "absl/status/statusor.h"
#include "model/config.h"

namespace sympow {

// First, per layer and kv head in that order: S as D × d row-major (row i is feature i of φ(k)),
// then z of D, in fp32 or bf16 elements by config.state_dtype. Then, per layer and kv head, the
// decode buffer (always fp32): the count of tokens in it (padded to 4 floats), then for each of
// its N places a log gate, then N keys of d, then N values of d. The buffer holds the tokens
// decoded since S and z were last folded (MODEL.md, deferred updates): the state stands for
// (S, z) advanced by them. Every backend uses this layout, so states move between backends and
// into snapshots byte for byte.
struct StateLayout {
  int64_t num_layers = 0;
  int64_t num_kv_heads = 0;
  int64_t expanded_dim = 0;  // D
  int64_t head_dim = 0;      // d
  int64_t buffer_tokens = 1;  // N
  StateDType dtype = StateDType::kFloat32;

  static StateLayout ForConfig(const ModelConfig& config);

  int64_t ElementsPerHead() const { return expanded_dim * head_dim + expanded_dim; }
  int64_t HeadOffset(int64_t layer, int64_t kv_head) const {
    return (layer * num_kv_heads + kv_head) * ElementsPerHead();
  }
  // Elements of S and z, all layers and heads.
  int64_t Elements() const { return num_layers * num_kv_heads * ElementsPerHead(); }
  int64_t ElementBytes() const { return dtype == StateDType::kFloat32 ? 4 : 2; }

  static constexpr int64_t kBufferHeaderFloats = 4;
  int64_t BufferFloatsPerHead() const {
    return kBufferHeaderFloats + buffer_tokens * (1 + 2 * head_dim);
  }
  // Byte offset of a layer's and kv head's decode buffer in the state.
  int64_t BufferOffset(int64_t layer, int64_t kv_head) const {
    return Elements() * ElementBytes() +
           (layer * num_kv_heads + kv_head) * BufferFloatsPerHead() * 4;
  }
  int64_t Bytes() const { return BufferOffset(num_layers, 0); }
};

// One layer's and kv head's decode buffer, viewed in place.
struct DecodeBufferView {
  float* base;
  int64_t capacity;  // N
  int64_t head_dim;  // d

  explicit DecodeBufferView(const StateLayout& layout, std::byte* state, int64_t layer,
                            int64_t kv_head)
      : base(reinterpret_cast<float*>(state + layout.BufferOffset(layer, kv_head))),
        capacity(layout.buffer_tokens),
        head_dim(layout.head_dim) {}

  int64_t count() const { return static_cast<int64_t>(base[0]); }
  void set_count(int64_t n) const { base[0] = static_cast<float>(n); }
  float* log_gates() const { return base + StateLayout::kBufferHeaderFloats; }
  float* key(int64_t i) const { return log_gates() + capacity + i * head_dim; }
  float* value(int64_t i) const { return log_gates() + capacity + (capacity + i) * head_dim; }
};

// The tokens in a state's decode buffers, checked: the state has this layout's size and every
// layer and kv head holds the same whole number in [0, N) (the engine folds a buffer as it
// fills). INVALID_ARGUMENT otherwise.
absl::StatusOr<int64_t> BufferedTokens(const StateLayout& layout, std::span<const std::byte> state);

}  // namespace sympow
