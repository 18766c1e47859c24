#include "model/device_weights.h"

namespace sympow {
namespace {

// Matrices keep their [out, in] shape; vectors (norms, biases) become one row.
Matrix UploadOptional(const TensorView* tensor, Backend& backend) {
  if (tensor == nullptr) return Matrix{};
  const int64_t rows = tensor->shape.size() == 2 ? tensor->shape[0] : 1;
  const int64_t cols = tensor->shape.back();
  return backend.Upload(*tensor, rows, cols);
}

}  // namespace

DeviceWeights UploadWeights(const ModelTensors& t, bool tied_embeddings, Backend& backend) {
  auto up = [&](const TensorView* tensor) { return UploadOptional(tensor, backend); };
  DeviceWeights w;
  w.embed = up(t.embed);
  for (const LayerTensors& l : t.layers) {
    w.layers.push_back(DeviceLayerWeights{
        up(l.input_norm), up(l.input_norm_bias), up(l.q_proj),    up(l.q_proj_bias),
        up(l.k_proj),     up(l.k_proj_bias),     up(l.v_proj),    up(l.v_proj_bias),
        up(l.g_proj),     up(l.g_proj_bias),     up(l.q_norm),    up(l.k_norm),
        up(l.o_proj),     up(l.o_proj_bias),     up(l.post_norm), up(l.post_norm_bias),
        up(l.mlp_in),     up(l.mlp_in_bias),     up(l.mlp_up),    up(l.mlp_up_bias),
        up(l.mlp_out),    up(l.mlp_out_bias)});
  }
  w.final_norm = up(t.final_norm);
  w.final_norm_bias = up(t.final_norm_bias);
  w.lm_head = tied_embeddings ? w.embed : up(t.lm_head);
  return w;
}

}  // namespace sympow
