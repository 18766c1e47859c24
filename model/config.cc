#include "model/config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/expansion.h"
#include "nlohmann/json.hpp"

namespace sympow {
namespace {

using nlohmann::json;

// Reads typed fields out of the config object, remembering the first error.
class FieldReader {
 public:
  FieldReader(const json& object, absl::string_view source) : object_(object), source_(source) {}

  void Int(const char* name, int64_t* out, bool required) {
    const json* field = Find(name, required);
    if (field == nullptr) return;
    if (!field->is_number_integer()) return Fail(name, "must be an integer", *field);
    *out = field->get<int64_t>();
  }
  void OptionalInt(const char* name, std::optional<int64_t>* out) {
    const json* field = Find(name, false);
    if (field == nullptr || field->is_null()) return;
    if (!field->is_number_integer()) return Fail(name, "must be an integer or null", *field);
    *out = field->get<int64_t>();
  }
  void Float(const char* name, double* out) {
    const json* field = Find(name, false);
    if (field == nullptr) return;
    if (!field->is_number()) return Fail(name, "must be a number", *field);
    *out = field->get<double>();
  }
  void OptionalFloat(const char* name, std::optional<double>* out) {
    const json* field = Find(name, false);
    if (field == nullptr || field->is_null()) return;
    if (!field->is_number()) return Fail(name, "must be a number or null", *field);
    *out = field->get<double>();
  }
  void Bool(const char* name, bool* out) {
    const json* field = Find(name, false);
    if (field == nullptr) return;
    if (!field->is_boolean()) return Fail(name, "must be true or false", *field);
    *out = field->get<bool>();
  }
  // Returns the string value, or `fallback` when absent.
  std::string String(const char* name, std::string fallback, bool required) {
    const json* field = Find(name, required);
    if (field == nullptr) return fallback;
    if (!field->is_string()) {
      Fail(name, "must be a string", *field);
      return fallback;
    }
    return field->get<std::string>();
  }
  bool Has(const char* name) const { return object_.contains(name); }

  void Error(const char* name, absl::string_view problem) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(absl::StrCat(source_, ": field '", name, "' ", problem));
    }
  }
  const absl::Status& status() const { return status_; }

 private:
  const json* Find(const char* name, bool required) {
    auto it = object_.find(name);
    if (it == object_.end()) {
      if (required) Error(name, "is required but missing");
      return nullptr;
    }
    return &*it;
  }
  void Fail(const char* name, absl::string_view problem, const json& value) {
    Error(name, absl::StrCat(problem, ", got ", value.dump()));
  }

  const json& object_;
  absl::string_view source_;
  absl::Status status_;
};

void Validate(const ModelConfig& c, FieldReader& r) {
  auto positive = [&](const char* name, int64_t value) {
    if (value <= 0) r.Error(name, absl::StrCat("must be positive, got ", value));
  };
  if (c.architecture != "sympow") {
    r.Error("architecture", absl::StrCat("must be \"sympow\", got \"", c.architecture, "\""));
  }
  positive("vocab_size", c.vocab_size);
  positive("hidden_size", c.hidden_size);
  positive("num_layers", c.num_layers);
  positive("num_heads", c.num_heads);
  positive("num_kv_heads", c.num_kv_heads);
  positive("head_dim", c.head_dim);
  positive("intermediate_size", c.intermediate_size);
  positive("chunk_size", c.chunk_size);
  if (c.decode_buffer_tokens < 1 || c.decode_buffer_tokens > kMaxDecodeBufferTokens) {
    r.Error("decode_buffer_tokens", absl::StrCat("must be in [1, ", kMaxDecodeBufferTokens,
                                                 "], got ", c.decode_buffer_tokens));
  }
  if (c.num_kv_heads > 0 && c.num_heads % c.num_kv_heads != 0) {
    r.Error("num_kv_heads",
            absl::StrCat("(", c.num_kv_heads, ") must divide num_heads (", c.num_heads, ")"));
  }
  if (c.degree < 2 || c.degree % 2 != 0) {
    r.Error("degree", absl::StrCat("must be an even integer >= 2, got ", c.degree));
  }
  if (c.rope_theta < 0 || !std::isfinite(c.rope_theta)) {
    r.Error("rope_theta", absl::StrCat("must be >= 0 (0 disables RoPE), got ", c.rope_theta));
  }
  if (c.rope_theta > 0 && c.head_dim % 2 != 0) {
    r.Error("head_dim", absl::StrCat("must be even when RoPE is on, got ", c.head_dim));
  }
  if (!(c.norm_eps > 0) || !std::isfinite(c.norm_eps)) {
    r.Error("norm_eps", absl::StrCat("must be a positive number, got ", c.norm_eps));
  }
  if (!std::isfinite(c.gate_bias)) r.Error("gate_bias", "must be finite");
  if (c.attention_scale && (!(*c.attention_scale > 0) || !std::isfinite(*c.attention_scale))) {
    r.Error("attention_scale", absl::StrCat("must be positive, got ", *c.attention_scale));
  }
  for (auto [name, id] :
       {std::pair{"bos_token_id", c.bos_token_id}, std::pair{"eos_token_id", c.eos_token_id}}) {
    if (id && (*id < 0 || *id >= c.vocab_size)) {
      r.Error(name, absl::StrCat("must be in [0, vocab_size=", c.vocab_size, "), got ", *id));
    }
  }
  if (r.status().ok() && !ExpandedDim(c.head_dim, c.degree).ok()) {
    r.Error("degree", absl::StrCat("with head_dim ", c.head_dim, " gives a state too large: ",
                                   ExpandedDim(c.head_dim, c.degree).status().message()));
  }
}

}  // namespace

double ModelConfig::AttentionScale() const {
  return attention_scale ? *attention_scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
}

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text,
                                             absl::string_view source) {
  json root = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded())
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON"));
  if (!root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": must be a JSON object"));
  }
  ModelConfig c;
  FieldReader r(root, source);
  c.architecture = r.String("architecture", "", /*required=*/true);
  r.Int("vocab_size", &c.vocab_size, true);
  r.Int("hidden_size", &c.hidden_size, true);
  r.Int("num_layers", &c.num_layers, true);
  r.Int("num_heads", &c.num_heads, true);
  r.Int("intermediate_size", &c.intermediate_size, true);
  r.Int("degree", &c.degree, true);
  c.num_kv_heads = c.num_heads;
  r.Int("num_kv_heads", &c.num_kv_heads, false);
  if (r.Has("head_dim")) {
    r.Int("head_dim", &c.head_dim, false);
  } else if (c.num_heads > 0 && c.hidden_size % c.num_heads != 0) {
    r.Error("head_dim", absl::StrCat("is missing and hidden_size (", c.hidden_size,
                                     ") is not a multiple of num_heads (", c.num_heads, ")"));
  } else if (c.num_heads > 0) {
    c.head_dim = c.hidden_size / c.num_heads;
  }
  r.Int("chunk_size", &c.chunk_size, false);
  r.Int("decode_buffer_tokens", &c.decode_buffer_tokens, false);
  r.Bool("gating", &c.gating);
  r.Float("gate_bias", &c.gate_bias);
  r.Bool("qk_norm", &c.qk_norm);
  r.OptionalFloat("attention_scale", &c.attention_scale);
  const std::string norm = r.String("norm", "rms", false);
  if (norm == "rms") {
    c.norm = NormKind::kRms;
  } else if (norm == "layer") {
    c.norm = NormKind::kLayer;
  } else {
    r.Error("norm", absl::StrCat("must be \"rms\" or \"layer\", got \"", norm, "\""));
  }
  const std::string mlp = r.String("mlp", "swiglu", false);
  if (mlp == "swiglu") {
    c.mlp = MlpKind::kSwiGlu;
  } else if (mlp == "gelu_tanh") {
    c.mlp = MlpKind::kGeluTanh;
  } else {
    r.Error("mlp", absl::StrCat("must be \"swiglu\" or \"gelu_tanh\", got \"", mlp, "\""));
  }
  r.Bool("bias", &c.bias);
  r.Float("norm_eps", &c.norm_eps);
  r.Float("rope_theta", &c.rope_theta);
  r.Bool("tie_word_embeddings", &c.tie_word_embeddings);
  r.OptionalInt("bos_token_id", &c.bos_token_id);
  r.OptionalInt("eos_token_id", &c.eos_token_id);
  absl::StatusOr<StateDType> state_dtype =
      ParseStateDType(r.String("state_dtype", "float32", false));
  if (state_dtype.ok()) {
    c.state_dtype = *state_dtype;
  } else {
    r.Error("state_dtype", state_dtype.status().message());
  }
  if (r.status().ok()) Validate(c, r);
  if (!r.status().ok()) return r.status();
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open config"));
  std::stringstream text;
  text << file.rdbuf();
  return ParseModelConfig(text.str(), path);
}

std::string ModelConfigToJson(const ModelConfig& c) {
  json j = {
      {"architecture", c.architecture},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"num_layers", c.num_layers},
      {"num_heads", c.num_heads},
      {"num_kv_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"intermediate_size", c.intermediate_size},
      {"degree", c.degree},
      {"chunk_size", c.chunk_size},
      {"decode_buffer_tokens", c.decode_buffer_tokens},
      {"gating", c.gating},
      {"gate_bias", c.gate_bias},
      {"qk_norm", c.qk_norm},
      {"attention_scale", c.attention_scale ? json(*c.attention_scale) : json(nullptr)},
      {"norm", c.norm == NormKind::kRms ? "rms" : "layer"},
      {"mlp", c.mlp == MlpKind::kSwiGlu ? "swiglu" : "gelu_tanh"},
      {"bias", c.bias},
      {"norm_eps", c.norm_eps},
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"bos_token_id", c.bos_token_id ? json(*c.bos_token_id) : json(nullptr)},
      {"eos_token_id", c.eos_token_id ? json(*c.eos_token_id) : json(nullptr)},
      {"state_dtype", StateDTypeName(c.state_dtype)},
  };
  return j.dump(2);
}

absl::StatusOr<StateDType> ParseStateDType(absl::string_view name) {
  if (name == "float32") return StateDType::kFloat32;
  if (name == "bfloat16") return StateDType::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("must be \"float32\" or \"bfloat16\", got \"", name, "\""));
}

absl::string_view StateDTypeName(StateDType dtype) {
  return dtype == StateDType::kFloat32 ? "float32" : "bfloat16";
}

}  // namespace sympow
