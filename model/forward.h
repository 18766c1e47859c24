// The model's forward pass over one batch of rows, written against the Backend interface.
#pragma once

#include <cstdint>
#include <vector>

#include "model/backend.h"
#include "model/config.h"
#include "model/device_weights.h"

namespace sympow {

// Rows of tokens from any number of sessions: each segment is one session's consecutive rows.
struct ForwardBatch {
  std::vector<int32_t> tokens;
  std::vector<int64_t> positions;  // absolute position of each row in its session
  std::vector<AttentionSegment> segments;
  std::vector<int64_t> logit_rows;  // rows whose next-token logits are wanted
};

// By default, passes of at most this many rows (decode steps, short prompts) compute q, k, v and
// the gate in one GEMM of the stacked weights and split its columns: one launch where four are
// launch-bound (13-18 us against 45-62 us at 1-256 rows on an H200). Longer passes run the four
// GEMMs on the stack's row views, writing each output in place: with the stack for every pass, the
// 124m model's 1,024-token prefill was 6% faster but its 2,048-row prefill passes 5% slower
// (bench/results/prefill_session17.md).
inline constexpr int64_t kDefaultStackedProjectionRows = 1024;

class ModelForward {
 public:
  // With `record_decode_steps`, a backend that records forward passes replays decode batches
  // (one row per session, every row's logits wanted) from recordings, one per padded size.
  // Passes of up to `stacked_projection_rows` rows run q/k/v/gate as one stacked GEMM.
  ModelForward(const ModelConfig& config, const DeviceWeights& weights, Backend& backend,
               int64_t chunk_size, bool record_decode_steps, int64_t stacked_projection_rows);

  // Advances every segment's state and returns the logits [logit_rows × vocab] in backend
  // memory, valid until the next run.
  MatrixView Run(const ForwardBatch& batch);
  // The same, with the logits copied to the host.
  void Run(const ForwardBatch& batch, float* logits);

 private:
  // Activation buffers, grown to the largest batch seen. What only Linear reads (normed,
  // mlp_product) is in the backend's LinearInputDType; attention_in holds the stacked q, k, v and
  // gate projections before they are split; projected takes the fp32 outputs added to the
  // residual, and the rows gathered for the LM head.
  struct Workspace {
    int64_t rows = 0;
    Matrix residual, normed, projected, attention_in, q, k, v, log_gate, attention, mlp_hidden,
        mlp_product;
    int64_t logit_rows = 0;
    Matrix logits;
  };
  void EnsureWorkspace(int64_t rows);
  // Queues the whole forward pass on the backend.
  MatrixView RunOperations(const ForwardBatch& batch);

  const ModelConfig& config_;
  const DeviceWeights& weights_;
  Backend& backend_;
  int64_t chunk_size_;
  bool record_decode_steps_;
  int64_t stacked_projection_rows_;
  Workspace work_;
};

}  // namespace sympow
