// The CUDA backend: weights resident in BF16 (vectors in fp32), fp32 activations, projections
// through cuBLAS (BF16 in, fp32 accumulate), power attention through kernels/, and session states
// in one device allocation cut into fixed slots. All work is queued on one stream; only
// CopyToHost and the state-slot reads and writes wait for it. Recorded forward passes are CUDA
// graphs: captured the second time a key is run with no allocation in between (the first run
// grows the buffers), replayed while nothing is allocated.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <vector>

#include "kernels/power_attention.h"
#include "kernels/sampling.h"
#include "model/backend.h"
#include "model/cuda/device_array.h"
#include "model/cuda/device_batch_inputs.h"

namespace sympow {

class CudaBackend final : public Backend {
 public:
  // FAILED_PRECONDITION without a usable GPU, UNIMPLEMENTED for shapes the kernels do not cover,
  // RESOURCE_EXHAUSTED when the state slots do not fit in device memory.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(const ModelConfig& config,
                                                             int64_t max_state_slots);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  int64_t DeviceMemoryInUse() const override;

  using Backend::Allocate;
  Matrix Allocate(int64_t rows, int64_t cols, DType dtype) override;
  // Every matrix of the model is BF16 here (Upload).
  DType LinearInputDType() const override { return DType::kBF16; }
  Matrix Upload(const TensorView& tensor, int64_t rows, int64_t cols) override;
  void CopyToHost(MatrixView from, float* to) override;
  void CopyFromHost(const float* from, MatrixView to) override;

  const StateLayout& state_layout() const override { return layout_; }
  absl::StatusOr<int32_t> AcquireStateSlot() override;
  void ReleaseStateSlot(int32_t slot) override;
  void CopyStateSlot(int32_t from, int32_t to) override;
  void ReadStateSlot(int32_t slot, std::span<std::byte> to) override;
  HostBuffer AllocateHostState() override;
  void WriteStateSlot(int32_t slot, std::span<const std::byte> from) override;

  void BeginBatch(const BatchInputs& inputs) override;
  bool RecordsForwardPasses() const override { return true; }
  int32_t PaddingStateSlot() const override { return static_cast<int32_t>(max_slots_); }
  MatrixView RunRecorded(int64_t key, const std::function<MatrixView()>& operations) override;
  RecordingCounts recording_counts() const override { return recording_counts_; }

  void Embed(const Matrix& table, std::span<const int32_t> tokens, MatrixView out) override;
  void Norm(NormKind kind, float eps, MatrixView x, const Matrix& weight, const Matrix* bias,
            MatrixView out) override;
  void Linear(MatrixView x, const Matrix& weight, const Matrix* bias, MatrixView out) override;
  void Add(MatrixView accumulate, MatrixView x) override;
  void HeadRmsNorm(MatrixView x, int64_t head_dim, const Matrix& weight, float eps) override;
  void Rope(MatrixView x, int64_t head_dim, std::span<const int64_t> positions,
            double theta) override;
  void LogSigmoidGate(MatrixView x, float gate_bias) override;
  void SwiGlu(MatrixView gate_up, MatrixView out) override;
  void GeluTanh(MatrixView x) override;
  void GatherRows(MatrixView x, std::span<const int64_t> rows, MatrixView out) override;
  void SplitColumns(MatrixView x, std::span<const MatrixView> parts) override;
  void PowerAttention(const PowerAttentionArgs& args) override;
  void FoldDecodeBuffers(std::span<const BufferedSession> sessions) override;
  bool FoldsFullBuffersInDecode() const override;
  void Sample(MatrixView logits, std::span<const RowSampling> rows,
              std::span<SampledToken> out) override;

 private:
  CudaBackend(const ModelConfig& config, int64_t max_state_slots);
  // Waits for everything queued so far.
  void Synchronize();
  std::byte* SlotData(int32_t slot) const;
  kernels::LayerOffsets LayerOffsets(int64_t layer) const;
  // Prefills the segments of one layer (fp32 or bf16 states, each advanced in place).
  void Prefill(const kernels::AttentionRows& rows, std::vector<kernels::PrefillSegment> segments);
  // A decode row (its slot's start) for each single-row segment.
  std::vector<kernels::DecodeRow> DecodeRows(std::span<const AttentionSegment> segments) const;

  // A forward pass captured as a CUDA graph, valid while allocation_epoch_ stays at `epoch`.
  struct Recording {
    int64_t epoch = -1;
    cudaGraphExec_t graph = nullptr;  // null after the first (eager) run
    MatrixView result;
  };

  StateLayout layout_;
  int64_t max_slots_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::byte* slots_ = nullptr;
  std::vector<int32_t> free_slots_;
  int32_t next_unused_slot_ = 0;
  // Counts device allocations that recorded passes may use: a recording made at another count
  // is stale.
  int64_t allocation_epoch_ = 0;
  std::map<int64_t, Recording> recordings_;
  RecordingCounts recording_counts_;
  DeviceArray<std::byte> cublas_workspace_;

  kernels::PowerAttentionShape shape_;
  DeviceArray<uint8_t> monomials_;
  DeviceArray<float> key_weights_;
  DeviceArray<int32_t> feature_rows_;

  // What decode passes use grows the allocation epoch (a recording reads them where they were).
  DeviceBatchInputs batch_inputs_{&allocation_epoch_};
  DeviceArray<uint16_t> bf16_activations_{&allocation_epoch_};
  DeviceArray<float> decode_scratch_{&allocation_epoch_};
  // Inputs of operations whose host data did not go through BeginBatch.
  DeviceArray<int32_t> tokens_;
  DeviceArray<int64_t> row_indices_;
  DeviceArray<kernels::DecodeRow> decode_rows_;

  // Folding decode buffers: the sessions and their gathered tokens as rows (no queries, no
  // outputs).
  DeviceArray<kernels::BufferedRows> fold_sessions_;
  DeviceArray<float> fold_keys_, fold_values_, fold_log_gates_;
  DeviceArray<kernels::PrefillSegment> prefill_segments_;
  DeviceArray<kernels::PrefillChunk> prefill_chunks_;
  DeviceArray<float> prefill_workspace_;  // kernels::PrefillWorkspaceFloats of them
  DeviceArray<float> widened_states_;     // fp32 copies of bf16 states while they are prefilled
  DeviceArray<kernels::SampleRowParams> sample_params_;
  DeviceArray<int32_t> penalized_tokens_;
  DeviceArray<float> penalized_logits_;
  DeviceArray<int32_t> sampled_tokens_;
  DeviceArray<float> sampled_logprobs_;
};

}  // namespace sympow
