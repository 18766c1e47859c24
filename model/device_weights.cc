#include "model/device_weights.h"

#include <utility>
#include <vector>

namespace sympow {
namespace {

// Matrices keep their [out, in] shape; vectors (norms, biases) become one row.
Matrix UploadOptional(const TensorView* tensor, Backend& backend) {
  if (tensor == nullptr) return Matrix{};
  const int64_t rows = tensor->shape.size() == 2 ? tensor->shape[0] : 1;
  const int64_t cols = tensor->shape.back();
  return backend.Upload(*tensor, rows, cols);
}

// Uploads `values` as an fp32 tensor of `shape`.
Matrix UploadFloats(const std::vector<float>& values, std::vector<int64_t> shape,
                    Backend& backend) {
  TensorView tensor;
  tensor.name = "stacked projections";
  tensor.shape = std::move(shape);
  tensor.data = reinterpret_cast<const std::byte*>(values.data());
  tensor.byte_size = values.size() * sizeof(float);
  return UploadOptional(&tensor, backend);
}

// Outputs of the q/k/v/gate stack come in multiples of this, zero rows filling the last: cuBLAS
// ran the 124m model's 2,316-output stack 2.5x slower than the four separate GEMMs at 65,536 rows,
// and padded to 2,368 outputs faster than them at every row count (H200,
// bench/results/prefill_session17.md).
constexpr int64_t kAttentionStackMultiple = 64;

// The matrices' rows one after the other, and their biases likewise (zeros for a matrix
// without one; none when no matrix has one), then zero rows up to a multiple of row_multiple;
// `parts` view each matrix's rows of the stack and `part_biases` its bias (empty where it had
// none). The checkpoint binding has checked the shapes.
struct Stack {
  Matrix weight, bias;
  std::vector<Matrix> parts, part_biases;
};
Stack UploadStacked(std::vector<const TensorView*> weights, std::vector<const TensorView*> biases,
                    int64_t row_multiple, Backend& backend) {
  const int64_t cols = weights.front()->shape[1];
  std::vector<float> stacked, stacked_bias;
  bool any_bias = false;
  for (size_t i = 0; i < weights.size(); ++i) {
    const std::vector<float> part = weights[i]->ToFloat();
    stacked.insert(stacked.end(), part.begin(), part.end());
    const int64_t rows = weights[i]->shape[0];
    if (biases[i] != nullptr) {
      any_bias = true;
      const std::vector<float> bias = biases[i]->ToFloat();
      stacked_bias.insert(stacked_bias.end(), bias.begin(), bias.end());
    } else {
      stacked_bias.insert(stacked_bias.end(), rows, 0.0f);
    }
  }
  const int64_t unpadded_rows = static_cast<int64_t>(stacked.size()) / cols;
  const int64_t rows = (unpadded_rows + row_multiple - 1) / row_multiple * row_multiple;
  stacked.resize(rows * cols, 0.0f);
  stacked_bias.resize(rows, 0.0f);
  Stack stack{UploadFloats(stacked, {rows, cols}, backend), Matrix{}, {}, {}};
  if (any_bias) stack.bias = UploadFloats(stacked_bias, {rows}, backend);
  int64_t first = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const int64_t part_rows = weights[i]->shape[0];
    stack.parts.push_back(Matrix{stack.weight.view.Rows(first, part_rows), stack.weight.storage});
    Matrix part_bias;
    if (biases[i] != nullptr) {
      const MatrixView& all = stack.bias.view;
      part_bias = Matrix{{static_cast<std::byte*>(all.data) + first * DTypeSize(all.dtype),
                          all.dtype, 1, part_rows},
                         stack.bias.storage};
    }
    stack.part_biases.push_back(part_bias);
    first += part_rows;
  }
  return stack;
}

}  // namespace

DeviceWeights UploadWeights(const ModelTensors& t, bool tied_embeddings, Backend& backend) {
  auto up = [&](const TensorView* tensor) { return UploadOptional(tensor, backend); };
  DeviceWeights w;
  w.embed = up(t.embed);
  for (const LayerTensors& l : t.layers) {
    std::vector<const TensorView*> attention_in = {l.q_proj, l.k_proj, l.v_proj};
    std::vector<const TensorView*> attention_in_bias = {l.q_proj_bias, l.k_proj_bias,
                                                        l.v_proj_bias};
    if (l.g_proj != nullptr) {
      attention_in.push_back(l.g_proj);
      attention_in_bias.push_back(l.g_proj_bias);
    }
    std::vector<const TensorView*> mlp_in = {l.mlp_in}, mlp_in_bias = {l.mlp_in_bias};
    if (l.mlp_up != nullptr) {
      mlp_in.push_back(l.mlp_up);
      mlp_in_bias.push_back(l.mlp_up_bias);
    }
    const Stack attention =
        UploadStacked(attention_in, attention_in_bias, kAttentionStackMultiple, backend);
    const Stack mlp = UploadStacked(mlp_in, mlp_in_bias, 1, backend);
    DeviceLayerWeights d;
    d.input_norm = up(l.input_norm);
    d.input_norm_bias = up(l.input_norm_bias);
    d.attention_in = attention.weight;
    d.attention_in_bias = attention.bias;
    Matrix* parts[] = {&d.q_proj, &d.k_proj, &d.v_proj, &d.g_proj};
    Matrix* part_biases[] = {&d.q_proj_bias, &d.k_proj_bias, &d.v_proj_bias, &d.g_proj_bias};
    for (size_t i = 0; i < attention.parts.size(); ++i) {
      *parts[i] = attention.parts[i];
      *part_biases[i] = attention.part_biases[i];
    }
    d.q_norm = up(l.q_norm);
    d.k_norm = up(l.k_norm);
    d.o_proj = up(l.o_proj);
    d.o_proj_bias = up(l.o_proj_bias);
    d.post_norm = up(l.post_norm);
    d.post_norm_bias = up(l.post_norm_bias);
    d.mlp_in = mlp.weight;
    d.mlp_in_bias = mlp.bias;
    d.mlp_out = up(l.mlp_out);
    d.mlp_out_bias = up(l.mlp_out_bias);
    w.layers.push_back(std::move(d));
  }
  w.final_norm = up(t.final_norm);
  w.final_norm_bias = up(t.final_norm_bias);
  w.lm_head = tied_embeddings ? w.embed : up(t.lm_head);
  return w;
}

}  // namespace sympow
