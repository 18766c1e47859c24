#include "model/weights.h"

#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sympow {
namespace {

// Collects what the config expects, then checks the checkpoint against it in one pass.
class Binder {
 public:
  explicit Binder(const Checkpoint& checkpoint) : checkpoint_(checkpoint) {}

  void Expect(const std::string& name, std::vector<int64_t> shape, const TensorView** slot) {
    expected_.insert(name);
    const TensorView* view = checkpoint_.Find(name);
    if (view == nullptr) {
      missing_.push_back(name);
      return;
    }
    if (view->shape != shape) {
      misshapen_.push_back(absl::StrCat(name, " is ", view->ShapeString(), ", expected [",
                                        absl::StrJoin(shape, ", "), "]"));
    }
    *slot = view;
  }

  // A weight plus, when `with_bias`, its `.bias` of the output size.
  void ExpectLinear(const std::string& prefix, int64_t out, int64_t in, bool with_bias,
                    const TensorView** weight, const TensorView** bias) {
    Expect(prefix + ".weight", {out, in}, weight);
    if (with_bias) Expect(prefix + ".bias", {out}, bias);
  }

  absl::Status Finish() const {
    std::vector<std::string> problems;
    auto report = [&](absl::string_view what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      constexpr size_t kShown = 8;
      std::vector<std::string> shown(names.begin(), names.begin() + std::min(names.size(), kShown));
      std::string more = names.size() > kShown ? absl::StrCat(" and ", names.size() - kShown, " more") : "";
      problems.push_back(absl::StrCat(what, " (", names.size(), "): ", absl::StrJoin(shown, ", "), more));
    };
    std::vector<std::string> extra;
    for (const auto& [name, view] : checkpoint_.tensors()) {
      if (!expected_.contains(name)) extra.push_back(name);
    }
    report("missing tensors", missing_);
    report("wrong shapes", misshapen_);
    report("unexpected tensors", extra);
    if (problems.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("weights do not match config.json: ",
                                                   absl::StrJoin(problems, "; ")));
  }

 private:
  const Checkpoint& checkpoint_;
  std::set<std::string> expected_;
  std::vector<std::string> missing_;
  std::vector<std::string> misshapen_;
};

}  // namespace

absl::StatusOr<ModelTensors> BindModelTensors(const ModelConfig& c, const Checkpoint& checkpoint) {
  Binder binder(checkpoint);
  ModelTensors model;
  const int64_t hidden = c.hidden_size;
  const int64_t q_width = c.num_heads * c.head_dim;
  const int64_t kv_width = c.num_kv_heads * c.head_dim;
  const bool norm_bias = c.norm == NormKind::kLayer && c.bias;
  binder.Expect("model.embed_tokens.weight", {c.vocab_size, hidden}, &model.embed);
  model.layers.resize(c.num_layers);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerTensors& layer = model.layers[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    binder.Expect(p + "input_layernorm.weight", {hidden}, &layer.input_norm);
    if (norm_bias) binder.Expect(p + "input_layernorm.bias", {hidden}, &layer.input_norm_bias);
    binder.ExpectLinear(p + "self_attn.q_proj", q_width, hidden, c.bias, &layer.q_proj, &layer.q_proj_bias);
    binder.ExpectLinear(p + "self_attn.k_proj", kv_width, hidden, c.bias, &layer.k_proj, &layer.k_proj_bias);
    binder.ExpectLinear(p + "self_attn.v_proj", kv_width, hidden, c.bias, &layer.v_proj, &layer.v_proj_bias);
    if (c.gating) {
      binder.ExpectLinear(p + "self_attn.g_proj", c.num_kv_heads, hidden, true, &layer.g_proj,
                          &layer.g_proj_bias);
    }
    if (c.qk_norm) {
      binder.Expect(p + "self_attn.q_norm.weight", {c.head_dim}, &layer.q_norm);
      binder.Expect(p + "self_attn.k_norm.weight", {c.head_dim}, &layer.k_norm);
    }
    binder.ExpectLinear(p + "self_attn.o_proj", hidden, q_width, c.bias, &layer.o_proj, &layer.o_proj_bias);
    binder.Expect(p + "post_attention_layernorm.weight", {hidden}, &layer.post_norm);
    if (norm_bias) binder.Expect(p + "post_attention_layernorm.bias", {hidden}, &layer.post_norm_bias);
    const int64_t inter = c.intermediate_size;
    if (c.mlp == MlpKind::kSwiGlu) {
      binder.ExpectLinear(p + "mlp.gate_proj", inter, hidden, c.bias, &layer.mlp_in, &layer.mlp_in_bias);
      binder.ExpectLinear(p + "mlp.up_proj", inter, hidden, c.bias, &layer.mlp_up, &layer.mlp_up_bias);
      binder.ExpectLinear(p + "mlp.down_proj", hidden, inter, c.bias, &layer.mlp_out, &layer.mlp_out_bias);
    } else {
      binder.ExpectLinear(p + "mlp.c_fc", inter, hidden, c.bias, &layer.mlp_in, &layer.mlp_in_bias);
      binder.ExpectLinear(p + "mlp.c_proj", hidden, inter, c.bias, &layer.mlp_out, &layer.mlp_out_bias);
    }
  }
  binder.Expect("model.norm.weight", {hidden}, &model.final_norm);
  if (norm_bias) binder.Expect("model.norm.bias", {hidden}, &model.final_norm_bias);
  if (c.tie_word_embeddings) {
    model.lm_head = model.embed;
  } else {
    binder.Expect("lm_head.weight", {c.vocab_size, hidden}, &model.lm_head);
  }
  if (absl::Status status = binder.Finish(); !status.ok()) return status;
  return model;
}

}  // namespace sympow
