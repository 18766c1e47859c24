// PowerAttention alone on a backend (CPU or CUDA): a one-layer config, random inputs, and a run
// that uploads them and keeps a state slot per session.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/backend.h"
#include "model/config.h"

namespace sympow::testing {

// A one-layer config for exercising PowerAttention alone.
ModelConfig AttentionConfig(int64_t head_dim, int64_t degree, int64_t heads, int64_t kv_heads,
                            bool gating, StateDType state);

// Random attention inputs: unit-normal q and k (as after qk-norm, over √d), values, and log
// gates of logsigmoid(N(6.9, 1)) as a fresh gated model has.
struct AttentionInputs {
  int64_t rows;
  std::vector<float> q, k, v, log_gate;
  AttentionInputs(const ModelConfig& c, int64_t rows, uint64_t seed);
};

// One backend with the inputs uploaded and a slot per session.
struct AttentionRun {
  std::unique_ptr<Backend> backend;
  Matrix q, k, v, log_gate, out;
  std::vector<int32_t> slots;
  const ModelConfig& config;

  AttentionRun(const std::string& device, const ModelConfig& c, const AttentionInputs& in,
               int64_t sessions);
  Matrix Upload(const std::vector<float>& x, int64_t rows, int64_t cols);
  // Runs segments {first_row, rows, session index} over the rows [first, first + count).
  void Run(int64_t first, int64_t count, const std::vector<AttentionSegment>& segments);
  std::vector<float> Output();
  // A slot's S and z as floats.
  std::vector<float> State(int32_t slot);
};

}  // namespace sympow::testing
