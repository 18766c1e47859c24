#include "model/forward.h"

#include <algorithm>
#include <array>
#include <bit>

namespace sympow {
namespace {

bool IsDecodeBatch(const ForwardBatch& batch) {
  const int64_t rows = static_cast<int64_t>(batch.tokens.size());
  if (static_cast<int64_t>(batch.segments.size()) != rows ||
      static_cast<int64_t>(batch.logit_rows.size()) != rows) {
    return false;
  }
  for (int64_t i = 0; i < rows; ++i) {
    if (batch.segments[i].num_rows != 1 || batch.logit_rows[i] != i) return false;
  }
  return rows > 0;
}

// The sizes decode batches are recorded at: 1, 2, 4, 8, then steps of an eighth of the power of
// two below (at least 8), so padding adds at most 1/8 and a thousand sessions need ~40 recordings.
int64_t RecordedRows(int64_t rows) {
  if (rows <= 8) return static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(rows)));
  const int64_t step =
      std::max<int64_t>(8, static_cast<int64_t>(std::bit_floor(static_cast<uint64_t>(rows))) / 8);
  return (rows + step - 1) / step * step;
}

// The batch grown to `rows` with rows that decode token 0 into `padding_slot`.
ForwardBatch Padded(const ForwardBatch& batch, int64_t rows, int32_t padding_slot) {
  ForwardBatch padded = batch;
  for (int64_t row = static_cast<int64_t>(batch.tokens.size()); row < rows; ++row) {
    padded.tokens.push_back(0);
    padded.positions.push_back(0);
    padded.segments.push_back({row, 1, padding_slot});
    padded.logit_rows.push_back(row);
  }
  return padded;
}

BatchInputs Inputs(const ForwardBatch& batch) {
  return {batch.tokens, batch.positions, batch.segments, batch.logit_rows};
}

}  // namespace

ModelForward::ModelForward(const ModelConfig& config, const DeviceWeights& weights,
                           Backend& backend, int64_t chunk_size, bool record_decode_steps,
                           int64_t stacked_projection_rows)
    : config_(config),
      weights_(weights),
      backend_(backend),
      chunk_size_(chunk_size),
      record_decode_steps_(record_decode_steps),
      stacked_projection_rows_(stacked_projection_rows) {}

void ModelForward::EnsureWorkspace(int64_t rows) {
  if (rows <= work_.rows) return;
  const ModelConfig& c = config_;
  work_.rows = rows;
  work_.residual = backend_.Allocate(rows, c.hidden_size);
  const DType linear_input = backend_.LinearInputDType();
  work_.normed = backend_.Allocate(rows, c.hidden_size, linear_input);
  work_.projected = backend_.Allocate(rows, c.hidden_size);
  // As wide as the stacked q/k/v/gate weights' outputs, padding included (UploadWeights).
  work_.attention_in = backend_.Allocate(rows, weights_.layers.front().attention_in.view.rows);
  work_.q = backend_.Allocate(rows, c.num_heads * c.head_dim);
  work_.k = backend_.Allocate(rows, c.num_kv_heads * c.head_dim);
  work_.v = backend_.Allocate(rows, c.num_kv_heads * c.head_dim);
  work_.log_gate = backend_.Allocate(rows, c.num_kv_heads);
  work_.attention = backend_.Allocate(rows, c.num_heads * c.head_dim);
  // With SwiGLU the stacked gate and up projections' outputs, twice as wide.
  const bool swiglu = c.mlp == MlpKind::kSwiGlu;
  work_.mlp_hidden = backend_.Allocate(rows, (swiglu ? 2 : 1) * c.intermediate_size);
  if (swiglu) {
    work_.mlp_product = backend_.Allocate(rows, c.intermediate_size, linear_input);
  }
}

void ModelForward::Run(const ForwardBatch& batch, float* logits) {
  const MatrixView device_logits = Run(batch);
  if (device_logits.rows > 0) backend_.CopyToHost(device_logits, logits);
}

MatrixView ModelForward::Run(const ForwardBatch& batch) {
  if (!record_decode_steps_ || !backend_.RecordsForwardPasses() || !IsDecodeBatch(batch)) {
    backend_.BeginBatch(Inputs(batch));
    return RunOperations(batch);
  }
  const int64_t rows = static_cast<int64_t>(batch.tokens.size());
  const ForwardBatch padded = Padded(batch, RecordedRows(rows), backend_.PaddingStateSlot());
  backend_.BeginBatch(Inputs(padded));
  // A step that folds buffers runs other kernels: a recording of its own.
  const int64_t key =
      2 * static_cast<int64_t>(padded.tokens.size()) + (AnyFoldsBuffers(batch.segments) ? 1 : 0);
  const MatrixView logits = backend_.RunRecorded(key, [&] { return RunOperations(padded); });
  return logits.Rows(0, rows);
}

MatrixView ModelForward::RunOperations(const ForwardBatch& batch) {
  const ModelConfig& c = config_;
  const DeviceWeights& w = weights_;
  Backend& b = backend_;
  const int64_t n = static_cast<int64_t>(batch.tokens.size());
  const float eps = static_cast<float>(c.norm_eps);
  EnsureWorkspace(n);
  MatrixView x = work_.residual.view.Rows(0, n);
  MatrixView a = work_.normed.view.Rows(0, n);
  MatrixView projected = work_.projected.view.Rows(0, n);
  MatrixView attention_in = work_.attention_in.view.Rows(0, n);
  MatrixView q = work_.q.view.Rows(0, n);
  MatrixView k = work_.k.view.Rows(0, n);
  MatrixView v = work_.v.view.Rows(0, n);
  MatrixView log_gate = c.gating ? work_.log_gate.view.Rows(0, n) : MatrixView{};
  MatrixView attention = work_.attention.view.Rows(0, n);
  MatrixView hidden = work_.mlp_hidden.view.Rows(0, n);
  MatrixView product = work_.mlp_product.view.Rows(0, n);

  b.Embed(w.embed, batch.tokens, x);
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    const DeviceLayerWeights& l = w.layers[layer];
    // a = Norm(h); h = h + o_proj(PowerAttention(a))
    b.Norm(c.norm, eps, x, l.input_norm, &l.input_norm_bias, a);
    if (n <= stacked_projection_rows_) {
      b.Linear(a, l.attention_in, &l.attention_in_bias, attention_in);
      if (c.gating) {
        b.SplitColumns(attention_in, std::array{q, k, v, log_gate});
      } else {
        b.SplitColumns(attention_in, std::array{q, k, v});
      }
    } else {
      b.Linear(a, l.q_proj, &l.q_proj_bias, q);
      b.Linear(a, l.k_proj, &l.k_proj_bias, k);
      b.Linear(a, l.v_proj, &l.v_proj_bias, v);
      if (c.gating) b.Linear(a, l.g_proj, &l.g_proj_bias, log_gate);
    }
    if (c.qk_norm) {
      b.HeadRmsNorm(q, c.head_dim, l.q_norm, eps);
      b.HeadRmsNorm(k, c.head_dim, l.k_norm, eps);
    }
    if (c.rope_theta > 0) {
      b.Rope(q, c.head_dim, batch.positions, c.rope_theta);
      b.Rope(k, c.head_dim, batch.positions, c.rope_theta);
    }
    if (c.gating) b.LogSigmoidGate(log_gate, static_cast<float>(c.gate_bias));
    b.PowerAttention({layer, q, k, v, log_gate, batch.segments, chunk_size_, attention});
    b.Linear(attention, l.o_proj, &l.o_proj_bias, projected);
    b.Add(x, projected);
    // m = Norm(h); h = h + MLP(m)
    b.Norm(c.norm, eps, x, l.post_norm, &l.post_norm_bias, a);
    b.Linear(a, l.mlp_in, &l.mlp_in_bias, hidden);
    if (c.mlp == MlpKind::kSwiGlu) {
      b.SwiGlu(hidden, product);
      b.Linear(product, l.mlp_out, &l.mlp_out_bias, projected);
    } else {
      b.GeluTanh(hidden);
      b.Linear(hidden, l.mlp_out, &l.mlp_out_bias, projected);
    }
    b.Add(x, projected);
  }
  // logits = lm_head(Norm(h)), only for the rows that are sampled.
  const int64_t m = static_cast<int64_t>(batch.logit_rows.size());
  if (m == 0) return {nullptr, DType::kF32, 0, c.vocab_size};
  if (m > work_.logit_rows) {
    work_.logit_rows = m;
    work_.logits = b.Allocate(m, c.vocab_size);
  }
  MatrixView picked = projected.Rows(0, m);
  MatrixView logits = work_.logits.view.Rows(0, m);
  b.GatherRows(x, batch.logit_rows, picked);
  b.Norm(c.norm, eps, picked, w.final_norm, &w.final_norm_bias, a.Rows(0, m));
  b.Linear(a.Rows(0, m), w.lm_head, nullptr, logits);
  return logits;
}

}  // namespace sympow
