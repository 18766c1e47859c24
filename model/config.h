// config.json of a sympow model: the fields of MODEL.md, parsed and validated.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sympow {

enum class NormKind { kRms, kLayer };
enum class MlpKind { kSwiGlu, kGeluTanh };
enum class StateDType { kFloat32, kBFloat16 };

struct ModelConfig {
  std::string architecture = "sympow";
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // default: num_heads
  int64_t head_dim = 0;      // default: hidden_size / num_heads
  int64_t intermediate_size = 0;
  int64_t degree = 2;
  int64_t chunk_size = 64;
  bool gating = false;
  double gate_bias = 0.0;
  bool qk_norm = false;
  std::optional<double> attention_scale;  // absent or null: 1/sqrt(head_dim)
  NormKind norm = NormKind::kRms;
  MlpKind mlp = MlpKind::kSwiGlu;
  bool bias = false;
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;  // 0 disables RoPE
  bool tie_word_embeddings = false;
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> eos_token_id;
  StateDType state_dtype = StateDType::kFloat32;
  // Decode keeps this many recent tokens' (k, v, log g) beside S and z, attends over them in the
  // quadratic form and folds them into S and z when the buffer fills (MODEL.md, deferred updates),
  // so most decode steps only read the state. 1 folds every token.
  int64_t decode_buffer_tokens = 64;

  // s in (s·q·k)^p.
  double AttentionScale() const;
  int64_t QueryHeadsPerKvHead() const { return num_heads / num_kv_heads; }
};

constexpr int64_t kMaxDecodeBufferTokens = 256;

// Parses config.json text; `source` names the file in error messages.
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text, absl::string_view source);
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path);

// Serialises every field, so a config round-trips through ParseModelConfig.
std::string ModelConfigToJson(const ModelConfig& config);

absl::string_view StateDTypeName(StateDType dtype);
// "float32" or "bfloat16"; INVALID_ARGUMENT quoting anything else.
absl::StatusOr<StateDType> ParseStateDType(absl::string_view name);

}  // namespace sympow
