#include "model/cpu/cpu_backend.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

namespace sympow {
namespace {

float* Floats(const MatrixView& m) { return static_cast<float*>(m.data); }
const float* Floats(const Matrix& m) { return static_cast<const float*>(m.view.data); }

// Normalises x[0..n) into out: (x − mean)/σ · w + b for LayerNorm, x/rms · w for RMSNorm.
// Accumulates in double so wide rows keep full fp32 accuracy.
void NormalizeRow(NormKind kind, float eps, const float* x, int64_t n, const float* weight,
                  const float* bias, float* out) {
  double mean = 0.0;
  if (kind == NormKind::kLayer) {
    for (int64_t j = 0; j < n; ++j) mean += x[j];
    mean /= static_cast<double>(n);
  }
  double squares = 0.0;
  for (int64_t j = 0; j < n; ++j) squares += (x[j] - mean) * (x[j] - mean);
  const float inverse = static_cast<float>(1.0 / std::sqrt(squares / static_cast<double>(n) + eps));
  for (int64_t j = 0; j < n; ++j) {
    out[j] = static_cast<float>(x[j] - mean) * inverse * weight[j] + (bias ? bias[j] : 0.0f);
  }
}

}  // namespace

CpuBackend::CpuBackend(const ModelConfig& config, int64_t max_state_slots)
    : layout_(StateLayout::ForConfig(config)),
      slots_(layout_.Bytes(), max_state_slots),
      attention_(config) {}

Matrix CpuBackend::Allocate(int64_t rows, int64_t cols, DType dtype) {
  const int64_t bytes = std::max<int64_t>(1, rows * cols) * static_cast<int64_t>(DTypeSize(dtype));
  std::shared_ptr<std::byte[]> storage(new std::byte[bytes]());
  return Matrix{{storage.get(), dtype, rows, cols}, storage};
}

Matrix CpuBackend::Upload(const TensorView& tensor, int64_t rows, int64_t cols) {
  Matrix matrix = Allocate(rows, cols);
  ConvertToFloat(tensor.dtype, tensor.data, rows * cols, Floats(matrix.view));
  return matrix;
}

void CpuBackend::CopyToHost(MatrixView from, float* to) {
  std::memcpy(to, from.data, from.rows * from.cols * sizeof(float));
}

void CpuBackend::CopyFromHost(const float* from, MatrixView to) {
  std::memcpy(to.data, from, to.rows * to.cols * sizeof(float));
}

absl::StatusOr<int32_t> CpuBackend::AcquireStateSlot() { return slots_.Acquire(); }
void CpuBackend::ReleaseStateSlot(int32_t slot) { slots_.Release(slot); }

void CpuBackend::CopyStateSlot(int32_t from, int32_t to) {
  std::memcpy(slots_.Data(to), slots_.Data(from), slots_.slot_bytes());
}

void CpuBackend::ReadStateSlot(int32_t slot, std::span<std::byte> to) {
  std::memcpy(to.data(), slots_.Data(slot), std::min<size_t>(to.size(), slots_.slot_bytes()));
}

void CpuBackend::WriteStateSlot(int32_t slot, std::span<const std::byte> from) {
  std::memcpy(slots_.Data(slot), from.data(), std::min<size_t>(from.size(), slots_.slot_bytes()));
}

void CpuBackend::Embed(const Matrix& table, std::span<const int32_t> tokens, MatrixView out) {
  const int64_t width = table.view.cols;
  for (size_t r = 0; r < tokens.size(); ++r) {
    std::memcpy(Floats(out) + r * width, Floats(table) + tokens[r] * width, width * sizeof(float));
  }
}

void CpuBackend::Norm(NormKind kind, float eps, MatrixView x, const Matrix& weight,
                      const Matrix* bias, MatrixView out) {
  const float* bias_data = bias != nullptr && !bias->empty() ? Floats(*bias) : nullptr;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < x.rows; ++r) {
    NormalizeRow(kind, eps, Floats(x) + r * x.cols, x.cols, Floats(weight), bias_data,
                 Floats(out) + r * out.cols);
  }
}

void CpuBackend::Linear(MatrixView x, const Matrix& weight, const Matrix* bias, MatrixView out) {
  const int64_t out_features = weight.view.rows;
  const int64_t in_features = weight.view.cols;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, x.rows, out_features, in_features, 1.0f,
              Floats(x), x.cols, Floats(weight), in_features, 0.0f, Floats(out), out.cols);
  if (bias == nullptr || bias->empty()) return;
  for (int64_t r = 0; r < x.rows; ++r) {
    float* row = Floats(out) + r * out.cols;
    for (int64_t j = 0; j < out_features; ++j) row[j] += Floats(*bias)[j];
  }
}

void CpuBackend::Add(MatrixView accumulate, MatrixView x) {
  const int64_t n = accumulate.rows * accumulate.cols;
  float* acc = Floats(accumulate);
  const float* add = Floats(x);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) acc[i] += add[i];
}

void CpuBackend::HeadRmsNorm(MatrixView x, int64_t head_dim, const Matrix& weight, float eps) {
  const int64_t heads = x.cols / head_dim;
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < x.rows * heads; ++task) {
    float* head = Floats(x) + task * head_dim;  // rows are dense, so heads are consecutive
    NormalizeRow(NormKind::kRms, eps, head, head_dim, Floats(weight), nullptr, head);
  }
}

void CpuBackend::Rope(MatrixView x, int64_t head_dim, std::span<const int64_t> positions,
                      double theta) {
  const int64_t half = head_dim / 2;
  const int64_t heads = x.cols / head_dim;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < x.rows; ++r) {
    for (int64_t i = 0; i < half; ++i) {
      // Angles in double: positions reach 10^6 and beyond, where fp32 angles lose the phase.
      const double angle =
          static_cast<double>(positions[r]) *
          std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
      const float cos_a = static_cast<float>(std::cos(angle));
      const float sin_a = static_cast<float>(std::sin(angle));
      for (int64_t h = 0; h < heads; ++h) {
        float* head = Floats(x) + r * x.cols + h * head_dim;
        const float first = head[i];
        const float second = head[i + half];
        head[i] = first * cos_a - second * sin_a;
        head[i + half] = second * cos_a + first * sin_a;
      }
    }
  }
}

void CpuBackend::LogSigmoidGate(MatrixView x, float gate_bias) {
  float* values = Floats(x);
  for (int64_t i = 0; i < x.rows * x.cols; ++i) {
    const float y = values[i] + gate_bias;
    // logsigmoid(y) = −softplus(−y), written so neither branch overflows.
    values[i] = y >= 0 ? -std::log1p(std::exp(-y)) : y - std::log1p(std::exp(y));
  }
}

void CpuBackend::SwiGlu(MatrixView gate_up, MatrixView out) {
  const int64_t width = out.cols;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < out.rows; ++r) {
    const float* g = Floats(gate_up) + r * gate_up.cols;
    const float* u = g + width;
    float* o = Floats(out) + r * width;
    for (int64_t j = 0; j < width; ++j) o[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
  }
}

void CpuBackend::GeluTanh(MatrixView x) {
  const int64_t n = x.rows * x.cols;
  float* values = Floats(x);
  const float k = static_cast<float>(std::sqrt(2.0 / std::numbers::pi));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float v = values[i];
    values[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}

void CpuBackend::GatherRows(MatrixView x, std::span<const int64_t> rows, MatrixView out) {
  for (size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(Floats(out) + i * out.cols, Floats(x) + rows[i] * x.cols, x.cols * sizeof(float));
  }
}

void CpuBackend::SplitColumns(MatrixView x, std::span<const MatrixView> parts) {
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* from = Floats(x) + r * x.cols;
    for (const MatrixView& part : parts) {
      std::memcpy(Floats(part) + r * part.cols, from, part.cols * sizeof(float));
      from += part.cols;
    }
  }
}

void CpuBackend::PowerAttention(const PowerAttentionArgs& args) {
  std::vector<std::byte*> states;
  states.reserve(args.segments.size());
  for (const AttentionSegment& segment : args.segments)
    states.push_back(slots_.Data(segment.state_slot));
  attention_.Run(args, states);
}

void CpuBackend::FoldDecodeBuffers(std::span<const BufferedSession> sessions) {
  for (const BufferedSession& session : sessions) {
    attention_.FoldDecodeBuffers(slots_.Data(session.state_slot));
  }
}

}  // namespace sympow
