#include "model/presets.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sympow {
namespace {

struct Shape {
  const char* name;
  int64_t vocab, hidden, layers, heads, kv_heads, head_dim, intermediate;
  bool tied;
};

constexpr Shape kShapes[] = {
    {"tiny", 8192, 256, 4, 4, 4, 64, 768, true},
    {"124m", 50304, 768, 12, 12, 12, 64, 2048, false},
    {"14b", 151936, 5120, 40, 40, 8, 128, 17408, false},
};

}  // namespace

absl::StatusOr<ModelConfig> PresetConfig(const std::string& name) {
  for (const Shape& shape : kShapes) {
    if (name != shape.name) continue;
    ModelConfig c;
    c.vocab_size = shape.vocab;
    c.hidden_size = shape.hidden;
    c.num_layers = shape.layers;
    c.num_heads = shape.heads;
    c.num_kv_heads = shape.kv_heads;
    c.head_dim = shape.head_dim;
    c.intermediate_size = shape.intermediate;
    c.tie_word_embeddings = shape.tied;
    c.degree = 2;
    c.chunk_size = 128;
    c.gating = true;
    c.gate_bias = 6.906768;  // a fresh gate ≈ 0.999, as Manifest's nanoGPT
    c.qk_norm = true;
    c.bos_token_id = 0;
    c.eos_token_id = 0;
    return c;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown preset '", name, "' (", absl::StrJoin(PresetNames(), ", "), ")"));
}

std::vector<std::string> PresetNames() {
  std::vector<std::string> names;
  for (const Shape& shape : kShapes) names.push_back(shape.name);
  return names;
}

}  // namespace sympow
