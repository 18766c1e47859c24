// The Backend interface: the operations a forward pass needs, implemented once per device.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/dtype.h"
#include "model/safetensors.h"
#include "model/sampler.h"
#include "model/state_layout.h"

namespace sympow {

// A row-major matrix in a backend's memory (host for CPU, device for CUDA). Non-owning.
struct MatrixView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;

  MatrixView Rows(int64_t first, int64_t count) const {
    return {static_cast<std::byte*>(data) + first * cols * static_cast<int64_t>(DTypeSize(dtype)),
            dtype, count, cols};
  }
};

// A matrix that owns its memory; copies share it.
struct Matrix {
  MatrixView view;
  std::shared_ptr<void> storage;

  bool empty() const { return view.data == nullptr; }
};

// Host memory a backend copies states to and from: pinned (page-locked) for a GPU backend, so the
// copies run at full bus speed; plain memory for the CPU backend.
using HostBuffer = std::unique_ptr<std::byte[], void (*)(std::byte*)>;

// A run of consecutive batch rows that belong to one session, whose state lives in `state_slot`.
// A segment of one row is a decode step; longer segments are prefilled in chunks.
struct AttentionSegment {
  int64_t first_row = 0;
  int64_t num_rows = 0;
  int32_t state_slot = 0;
  // A decode row whose token fills its state's decode buffers, to be folded in the step: set only
  // for a backend that FoldsFullBuffersInDecode().
  bool folds_buffers = false;
};

// Whether any of the segments folds its buffers in the step (a step of other kernels).
inline bool AnyFoldsBuffers(std::span<const AttentionSegment> segments) {
  return std::any_of(segments.begin(), segments.end(),
                     [](const AttentionSegment& s) { return s.folds_buffers; });
}

// A session's decode buffers (every layer's and kv head's hold the same `tokens`) to fold.
struct BufferedSession {
  int32_t state_slot = 0;
  int64_t tokens = 0;
};

struct PowerAttentionArgs {
  int64_t layer = 0;
  MatrixView q;         // [rows × num_heads·d], after qk-norm and RoPE
  MatrixView k;         // [rows × num_kv_heads·d]
  MatrixView v;         // [rows × num_kv_heads·d]
  MatrixView log_gate;  // [rows × num_kv_heads] log g; data == nullptr without gating
  std::span<const AttentionSegment> segments;
  int64_t chunk_size = 64;  // prefill chunk; results do not depend on it
  MatrixView out;           // [rows × num_heads·d]
};

// The per-row inputs of one forward pass. A backend may copy them to its memory once, in
// BeginBatch, for the operations that follow to find there: those that are given these same spans
// (same data, same size) until the next BeginBatch.
struct BatchInputs {
  std::span<const int32_t> tokens;
  std::span<const int64_t> positions;
  std::span<const AttentionSegment> segments;
  std::span<const int64_t> logit_rows;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Device memory in use now (the whole GPU's, as the driver reports it); 0 for host backends.
  virtual int64_t DeviceMemoryInUse() const { return 0; }

  // ---- memory
  virtual Matrix Allocate(int64_t rows, int64_t cols, DType dtype) = 0;
  Matrix Allocate(int64_t rows, int64_t cols) { return Allocate(rows, cols, DType::kF32); }
  // The dtype Linear reads its input in fastest: Norm and SwiGlu may write it (an fp32 backend
  // takes fp32 everywhere).
  virtual DType LinearInputDType() const { return DType::kF32; }
  // Copies a checkpoint tensor into backend memory, viewed as [rows × cols].
  virtual Matrix Upload(const TensorView& tensor, int64_t rows, int64_t cols) = 0;
  virtual void CopyToHost(MatrixView from, float* to) = 0;
  // Fills an fp32 matrix from host memory (rows × cols floats).
  virtual void CopyFromHost(const float* from, MatrixView to) = 0;

  // ---- session states: fixed-size slots laid out as StateLayout says
  virtual const StateLayout& state_layout() const = 0;
  // A zeroed slot, or RESOURCE_EXHAUSTED when all are taken.
  virtual absl::StatusOr<int32_t> AcquireStateSlot() = 0;
  virtual void ReleaseStateSlot(int32_t slot) = 0;
  virtual void CopyStateSlot(int32_t from, int32_t to) = 0;
  virtual void ReadStateSlot(int32_t slot, std::span<std::byte> to) = 0;
  // Host memory for one state (StateLayout::Bytes()), for states moved out of their slots.
  virtual HostBuffer AllocateHostState() {
    return HostBuffer(new std::byte[state_layout().Bytes()], [](std::byte* p) { delete[] p; });
  }
  virtual void WriteStateSlot(int32_t slot, std::span<const std::byte> from) = 0;

  // ---- recorded forward passes (CUDA graphs)
  virtual void BeginBatch(const BatchInputs&) {}
  // Whether RunRecorded replays recordings. Decode batches are then padded to a few sizes, the
  // padding rows advancing PaddingStateSlot(), a slot no session is given.
  virtual bool RecordsForwardPasses() const { return false; }
  virtual int32_t PaddingStateSlot() const { return -1; }
  // Runs `operations` (this backend's, for one batch whose host inputs all went to BeginBatch and
  // whose shape `key` stands for) and returns their result; a recording backend may instead
  // replay what they queued the last time under `key`, when nothing was allocated since.
  virtual MatrixView RunRecorded(int64_t /*key*/, const std::function<MatrixView()>& operations) {
    return operations();
  }
  // Forward passes recorded (captured) and replayed so far.
  struct RecordingCounts {
    int64_t captured = 0;
    int64_t replayed = 0;
  };
  virtual RecordingCounts recording_counts() const { return {}; }

  // ---- operations; `out` may alias an input only where noted
  virtual void Embed(const Matrix& table, std::span<const int32_t> tokens, MatrixView out) = 0;
  // RMSNorm or LayerNorm over each row; `bias` may be null; `out` fp32 or LinearInputDType().
  virtual void Norm(NormKind kind, float eps, MatrixView x, const Matrix& weight,
                    const Matrix* bias, MatrixView out) = 0;
  // out = x·Wᵀ (+ bias), W of [out_features × in_features]; `x` fp32 or LinearInputDType().
  virtual void Linear(MatrixView x, const Matrix& weight, const Matrix* bias, MatrixView out) = 0;
  // accumulate += x
  virtual void Add(MatrixView accumulate, MatrixView x) = 0;
  // In place: RMSNorm of every head_dim-wide slice of each row (qk-norm).
  virtual void HeadRmsNorm(MatrixView x, int64_t head_dim, const Matrix& weight, float eps) = 0;
  // In place: rotate-half RoPE of every head, row r at absolute position positions[r].
  virtual void Rope(MatrixView x, int64_t head_dim, std::span<const int64_t> positions,
                    double theta) = 0;
  // In place: x ← logsigmoid(x + gate_bias), the per-token log forget gate.
  virtual void LogSigmoidGate(MatrixView x, float gate_bias) = 0;
  // out = silu(gate) · up, where each row of `gate_up` is a row of gate then one of up (a stacked
  // projection's output); out is fp32 or LinearInputDType().
  virtual void SwiGlu(MatrixView gate_up, MatrixView out) = 0;
  // In place: tanh-approximated GELU.
  virtual void GeluTanh(MatrixView x) = 0;
  // out row i = x row rows[i].
  virtual void GatherRows(MatrixView x, std::span<const int64_t> rows, MatrixView out) = 0;
  // Each row of x cut into consecutive column ranges: parts[i] takes the next parts[i].cols
  // columns (fp32; at most kMaxSplitParts parts, together at most x.cols wide: columns past them
  // are left out).
  static constexpr int kMaxSplitParts = 4;
  virtual void SplitColumns(MatrixView x, std::span<const MatrixView> parts) = 0;
  // Power attention for every segment, reading and advancing each segment's state slot. A
  // decode row (a one-row segment) adds its token to the state's decode buffers, which must have
  // room; a prefill segment's state must have empty buffers (FoldDecodeBuffers).
  virtual void PowerAttention(const PowerAttentionArgs& args) = 0;
  // Folds the sessions' decode buffers into their S and z, every layer, and empties them.
  virtual void FoldDecodeBuffers(std::span<const BufferedSession> sessions) = 0;
  // Whether PowerAttention folds the buffers of decode rows marked folds_buffers in the step that
  // fills them (leaving them empty), instead of the caller's FoldDecodeBuffers after it.
  virtual bool FoldsFullBuffersInDecode() const { return false; }
  // One token per row of fp32 `logits` [rows × vocab] by the rule in model/sampler.h. This
  // default copies the logits to the host; a GPU backend samples where they are, so that only
  // token ids and log-probs cross.
  virtual void Sample(MatrixView logits, std::span<const RowSampling> rows,
                      std::span<SampledToken> out);
};

}  // namespace sympow
