#include "model/weights.h"

#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sympow {
namespace {

using Slot = std::function<const TensorView**(ModelTensors&)>;

Slot LayerSlot(int64_t layer, const TensorView* LayerTensors::*member) {
  return [layer, member](ModelTensors& m) { return &(m.layers[layer].*member); };
}

Slot ModelSlot(const TensorView* ModelTensors::*member) {
  return [member](ModelTensors& m) { return &(m.*member); };
}

// "missing tensors (3): a, b, c" with at most a few names shown.
std::string NameList(absl::string_view what, const std::vector<std::string>& names) {
  constexpr size_t kShown = 8;
  std::vector<std::string> shown(names.begin(), names.begin() + std::min(names.size(), kShown));
  const std::string more =
      names.size() > kShown ? absl::StrCat(" and ", names.size() - kShown, " more") : "";
  return absl::StrCat(what, " (", names.size(), "): ", absl::StrJoin(shown, ", "), more);
}

}  // namespace

std::vector<TensorSpec> ModelTensorSpecs(const ModelConfig& c) {
  std::vector<TensorSpec> specs;
  const int64_t hidden = c.hidden_size;
  const bool norm_bias = c.norm == NormKind::kLayer && c.bias;
  auto add = [&](std::string name, std::vector<int64_t> shape, TensorRole role, Slot slot) {
    specs.push_back({std::move(name), std::move(shape), role, std::move(slot)});
  };
  specs.reserve(16 * c.num_layers + 4);
  add("model.embed_tokens.weight", {c.vocab_size, hidden}, TensorRole::kEmbedding,
      ModelSlot(&ModelTensors::embed));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    using L = LayerTensors;
    auto norm = [&](const std::string& name, const TensorView* L::*weight,
                    const TensorView* L::*bias) {
      add(p + name + ".weight", {hidden}, TensorRole::kNormWeight, LayerSlot(i, weight));
      if (norm_bias) add(p + name + ".bias", {hidden}, TensorRole::kBias, LayerSlot(i, bias));
    };
    auto linear = [&](const std::string& name, int64_t out, int64_t in, bool with_bias,
                      const TensorView* L::*weight, const TensorView* L::*bias) {
      add(p + name + ".weight", {out, in}, TensorRole::kProjection, LayerSlot(i, weight));
      if (with_bias) add(p + name + ".bias", {out}, TensorRole::kBias, LayerSlot(i, bias));
    };
    const int64_t q_width = c.num_heads * c.head_dim;
    const int64_t kv_width = c.num_kv_heads * c.head_dim;
    norm("input_layernorm", &L::input_norm, &L::input_norm_bias);
    linear("self_attn.q_proj", q_width, hidden, c.bias, &L::q_proj, &L::q_proj_bias);
    linear("self_attn.k_proj", kv_width, hidden, c.bias, &L::k_proj, &L::k_proj_bias);
    linear("self_attn.v_proj", kv_width, hidden, c.bias, &L::v_proj, &L::v_proj_bias);
    if (c.gating) {
      add(p + "self_attn.g_proj.weight", {c.num_kv_heads, hidden}, TensorRole::kGateProjection,
          LayerSlot(i, &L::g_proj));
      add(p + "self_attn.g_proj.bias", {c.num_kv_heads}, TensorRole::kBias,
          LayerSlot(i, &L::g_proj_bias));
    }
    if (c.qk_norm) {
      add(p + "self_attn.q_norm.weight", {c.head_dim}, TensorRole::kNormWeight,
          LayerSlot(i, &L::q_norm));
      add(p + "self_attn.k_norm.weight", {c.head_dim}, TensorRole::kNormWeight,
          LayerSlot(i, &L::k_norm));
    }
    linear("self_attn.o_proj", hidden, q_width, c.bias, &L::o_proj, &L::o_proj_bias);
    norm("post_attention_layernorm", &L::post_norm, &L::post_norm_bias);
    const int64_t inter = c.intermediate_size;
    if (c.mlp == MlpKind::kSwiGlu) {
      linear("mlp.gate_proj", inter, hidden, c.bias, &L::mlp_in, &L::mlp_in_bias);
      linear("mlp.up_proj", inter, hidden, c.bias, &L::mlp_up, &L::mlp_up_bias);
      linear("mlp.down_proj", hidden, inter, c.bias, &L::mlp_out, &L::mlp_out_bias);
    } else {
      linear("mlp.c_fc", inter, hidden, c.bias, &L::mlp_in, &L::mlp_in_bias);
      linear("mlp.c_proj", hidden, inter, c.bias, &L::mlp_out, &L::mlp_out_bias);
    }
  }
  add("model.norm.weight", {hidden}, TensorRole::kNormWeight, ModelSlot(&ModelTensors::final_norm));
  if (norm_bias) {
    add("model.norm.bias", {hidden}, TensorRole::kBias, ModelSlot(&ModelTensors::final_norm_bias));
  }
  if (!c.tie_word_embeddings) {
    add("lm_head.weight", {c.vocab_size, hidden}, TensorRole::kProjection,
        ModelSlot(&ModelTensors::lm_head));
  }
  return specs;
}

absl::StatusOr<ModelTensors> BindModelTensors(const ModelConfig& c, const Checkpoint& checkpoint) {
  ModelTensors model;
  model.layers.resize(c.num_layers);
  std::set<std::string> expected;
  std::vector<std::string> missing, misshapen, unexpected;
  for (const TensorSpec& spec : ModelTensorSpecs(c)) {
    expected.insert(spec.name);
    const TensorView* view = checkpoint.Find(spec.name);
    if (view == nullptr) {
      missing.push_back(spec.name);
    } else if (view->shape != spec.shape) {
      misshapen.push_back(absl::StrCat(spec.name, " is ", view->ShapeString(), ", expected [",
                                       absl::StrJoin(spec.shape, ", "), "]"));
    } else {
      *spec.slot(model) = view;
    }
  }
  for (const auto& [name, view] : checkpoint.tensors()) {
    if (!expected.contains(name)) unexpected.push_back(name);
  }
  std::vector<std::string> problems;
  if (!missing.empty()) problems.push_back(NameList("missing tensors", missing));
  if (!misshapen.empty()) problems.push_back(NameList("wrong shapes", misshapen));
  if (!unexpected.empty()) problems.push_back(NameList("unexpected tensors", unexpected));
  if (!problems.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights do not match config.json: ", absl::StrJoin(problems, "; ")));
  }
  if (c.tie_word_embeddings) model.lm_head = model.embed;
  return model;
}

}  // namespace sympow
