#include "tests/unit/attention_run.h"

#include <cmath>
#include <cstring>
#include <random>

#include "model/backend_factory.h"
#include "model/dtype.h"
#include "model/state_layout.h"
#include "tests/unit/model_files.h"

namespace sympow::testing {

ModelConfig AttentionConfig(int64_t head_dim, int64_t degree, int64_t heads, int64_t kv_heads,
                            bool gating, StateDType state) {
  ModelConfig c = SmallConfig();
  c.num_layers = 1;
  c.head_dim = head_dim;
  c.degree = degree;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.gating = gating;
  c.state_dtype = state;
  return c;
}

AttentionInputs::AttentionInputs(const ModelConfig& c, int64_t rows, uint64_t seed) : rows(rows) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  auto fill = [&](std::vector<float>& x, int64_t n) {
    x.resize(n);
    for (float& value : x) value = normal(rng);
  };
  fill(q, rows * c.num_heads * c.head_dim);
  fill(k, rows * c.num_kv_heads * c.head_dim);
  fill(v, rows * c.num_kv_heads * c.head_dim);
  log_gate.resize(rows * c.num_kv_heads);
  for (float& g : log_gate) g = -std::log1p(std::exp(-(6.9f + normal(rng))));
}

AttentionRun::AttentionRun(const std::string& device, const ModelConfig& c,
                           const AttentionInputs& in, int64_t sessions)
    : config(c) {
  backend = CreateBackend(device, c, sessions).value();
  q = Upload(in.q, in.rows, c.num_heads * c.head_dim);
  k = Upload(in.k, in.rows, c.num_kv_heads * c.head_dim);
  v = Upload(in.v, in.rows, c.num_kv_heads * c.head_dim);
  log_gate = Upload(in.log_gate, in.rows, c.num_kv_heads);
  out = backend->Allocate(in.rows, c.num_heads * c.head_dim);
  for (int64_t s = 0; s < sessions; ++s) slots.push_back(backend->AcquireStateSlot().value());
}

Matrix AttentionRun::Upload(const std::vector<float>& x, int64_t rows, int64_t cols) {
  Matrix m = backend->Allocate(rows, cols);
  backend->CopyFromHost(x.data(), m.view);
  return m;
}

void AttentionRun::Run(int64_t first, int64_t count,
                       const std::vector<AttentionSegment>& segments) {
  PowerAttentionArgs args{0,
                          q.view.Rows(first, count),
                          k.view.Rows(first, count),
                          v.view.Rows(first, count),
                          config.gating ? log_gate.view.Rows(first, count) : MatrixView{},
                          segments,
                          config.chunk_size,
                          out.view.Rows(first, count)};
  backend->PowerAttention(args);
}

std::vector<float> AttentionRun::Output() {
  std::vector<float> host(out.view.rows * out.view.cols);
  backend->CopyToHost(out.view, host.data());
  return host;
}

std::vector<float> AttentionRun::State(int32_t slot) {
  std::vector<std::byte> bytes(backend->state_layout().Bytes());
  backend->ReadStateSlot(slot, bytes);
  const int64_t n = backend->state_layout().Elements();
  std::vector<float> values(n);
  if (backend->state_layout().dtype == StateDType::kFloat32) {
    std::memcpy(values.data(), bytes.data(), n * sizeof(float));
  } else {
    ConvertToFloat(DType::kBF16, bytes.data(), n, values.data());
  }
  return values;
}

}  // namespace sympow::testing
