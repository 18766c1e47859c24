// Binds a checkpoint's tensors to the model's structure, checking names and shapes against the
// config.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/checkpoint.h"
#include "model/config.h"

namespace sympow {

// One decoder block's tensors; optional ones are null when the config does not use them.
struct LayerTensors {
  const TensorView* input_norm = nullptr;
  const TensorView* input_norm_bias = nullptr;
  const TensorView* q_proj = nullptr;
  const TensorView* q_proj_bias = nullptr;
  const TensorView* k_proj = nullptr;
  const TensorView* k_proj_bias = nullptr;
  const TensorView* v_proj = nullptr;
  const TensorView* v_proj_bias = nullptr;
  const TensorView* g_proj = nullptr;
  const TensorView* g_proj_bias = nullptr;
  const TensorView* q_norm = nullptr;
  const TensorView* k_norm = nullptr;
  const TensorView* o_proj = nullptr;
  const TensorView* o_proj_bias = nullptr;
  const TensorView* post_norm = nullptr;
  const TensorView* post_norm_bias = nullptr;
  // swiglu: mlp_in = gate_proj, mlp_up = up_proj, mlp_out = down_proj.
  // gelu_tanh: mlp_in = c_fc, mlp_out = c_proj, mlp_up unused.
  const TensorView* mlp_in = nullptr;
  const TensorView* mlp_in_bias = nullptr;
  const TensorView* mlp_up = nullptr;
  const TensorView* mlp_up_bias = nullptr;
  const TensorView* mlp_out = nullptr;
  const TensorView* mlp_out_bias = nullptr;
};

struct ModelTensors {
  const TensorView* embed = nullptr;
  std::vector<LayerTensors> layers;
  const TensorView* final_norm = nullptr;
  const TensorView* final_norm_bias = nullptr;
  const TensorView* lm_head = nullptr;  // the embedding when tie_word_embeddings
};

// What a tensor is, so tools that make random models can initialise it sensibly.
enum class TensorRole { kEmbedding, kProjection, kGateProjection, kNormWeight, kBias };

// One tensor that MODEL.md names for a config, and where it binds in ModelTensors.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  TensorRole role;
  std::function<const TensorView**(ModelTensors&)> slot;
};

// Every tensor the config requires, in file order (embedding, layers, final norm, head).
std::vector<TensorSpec> ModelTensorSpecs(const ModelConfig& config);

// Every tensor MODEL.md names for `config` must exist with its shape; missing, misshapen and
// unexpected tensors are reported by name. The views stay owned by `checkpoint`.
absl::StatusOr<ModelTensors> BindModelTensors(const ModelConfig& config,
                                              const Checkpoint& checkpoint);

}  // namespace sympow
