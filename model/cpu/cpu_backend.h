// The CPU backend: fp32 activations and weights in host memory, matmuls through OpenBLAS,
// elementwise work and decode parallel through OpenMP.
#pragma once

#include "model/backend.h"
#include "model/cpu/cpu_power_attention.h"
#include "model/cpu/cpu_state_slots.h"

namespace sympow {

class CpuBackend final : public Backend {
 public:
  CpuBackend(const ModelConfig& config, int64_t max_state_slots);

  std::string name() const override { return "cpu"; }

  using Backend::Allocate;
  Matrix Allocate(int64_t rows, int64_t cols, DType dtype) override;
  Matrix Upload(const TensorView& tensor, int64_t rows, int64_t cols) override;
  void CopyToHost(MatrixView from, float* to) override;
  void CopyFromHost(const float* from, MatrixView to) override;

  const StateLayout& state_layout() const override { return layout_; }
  absl::StatusOr<int32_t> AcquireStateSlot() override;
  void ReleaseStateSlot(int32_t slot) override;
  void CopyStateSlot(int32_t from, int32_t to) override;
  void ReadStateSlot(int32_t slot, std::span<std::byte> to) override;
  void WriteStateSlot(int32_t slot, std::span<const std::byte> from) override;

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

 private:
  StateLayout layout_;
  CpuStateSlots slots_;
  CpuPowerAttention attention_;
};

}  // namespace sympow
