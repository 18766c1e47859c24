// Where each layer's and kv head's (S, z) sit inside one session's state.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace sympow {

// Per layer and kv head, in that order: S as D × d row-major (row i is feature i of φ(k)),
// then z of D. Elements are fp32 or bf16 by config.state_dtype; every backend uses this layout,
// so states move between backends and into snapshots byte for byte.
struct StateLayout {
  int64_t num_layers = 0;
  int64_t num_kv_heads = 0;
  int64_t expanded_dim = 0;  // D
  int64_t head_dim = 0;      // d
  StateDType dtype = StateDType::kFloat32;

  static StateLayout ForConfig(const ModelConfig& config);

  int64_t ElementsPerHead() const { return expanded_dim * head_dim + expanded_dim; }
  int64_t HeadOffset(int64_t layer, int64_t kv_head) const {
    return (layer * num_kv_heads + kv_head) * ElementsPerHead();
  }
  int64_t Elements() const { return num_layers * num_kv_heads * ElementsPerHead(); }
  int64_t ElementBytes() const { return dtype == StateDType::kFloat32 ? 4 : 2; }
  int64_t Bytes() const { return Elements() * ElementBytes(); }
};

}  // namespace sympow
