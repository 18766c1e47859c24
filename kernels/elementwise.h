// Elementwise and row-wise kernels of the forward pass (fp32 activations, bf16 tables; the norms
// and SwiGLU can write bf16 for the GEMMs that read them).
// Every launcher enqueues on `stream` and returns at once.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace sympow::kernels {

// out[r] = float(table[tokens[r]]), rows of `width`.
void Embed(const uint16_t* table_bf16, const int32_t* tokens, int64_t rows, int64_t width,
           float* out, cudaStream_t stream);
// RMSNorm (layer_norm = false) or LayerNorm of each row; bias may be null. out may alias x. The
// bf16 overload writes what a BF16 GEMM reads, so that no conversion kernel runs in between.
void Norm(bool layer_norm, float eps, const float* x, int64_t rows, int64_t cols,
          const float* weight, const float* bias, float* out, cudaStream_t stream);
void Norm(bool layer_norm, float eps, const float* x, int64_t rows, int64_t cols,
          const float* weight, const float* bias, uint16_t* out_bf16, cudaStream_t stream);
// In place RMSNorm of every head_dim-wide slice (qk-norm).
void HeadRmsNorm(float* x, int64_t rows, int64_t cols, int64_t head_dim, const float* weight,
                 float eps, cudaStream_t stream);
// In place rotate-half RoPE; row r at positions[r]. Angles in double, as the CPU backend.
void Rope(float* x, int64_t rows, int64_t cols, int64_t head_dim, const int64_t* positions,
          double theta, cudaStream_t stream);
void LogSigmoidGate(float* x, int64_t n, float gate_bias, cudaStream_t stream);
// out = silu(gate) · up for rows of `width`; a row of gate_up holds the row of gate, then up's.
void SwiGlu(const float* gate_up, int64_t rows, int64_t width, float* out, cudaStream_t stream);
void SwiGlu(const float* gate_up, int64_t rows, int64_t width, uint16_t* out_bf16,
            cudaStream_t stream);
void GeluTanh(float* x, int64_t n, cudaStream_t stream);
void Add(float* accumulate, const float* x, int64_t n, cudaStream_t stream);
// out[r] += bias for each row of `cols`.
void AddBias(float* out, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream);
// Where SplitColumns puts each row's consecutive column ranges: part p is widths[p] wide.
struct SplitParts {
  static constexpr int kMaxParts = 4;
  int count = 0;
  float* out[kMaxParts] = {};
  int64_t widths[kMaxParts] = {};
};
void SplitColumns(const float* x, int64_t rows, int64_t cols, const SplitParts& parts,
                  cudaStream_t stream);
// out row i = x row rows[i].
void GatherRows(const float* x, const int64_t* rows, int64_t count, int64_t cols, float* out,
                cudaStream_t stream);
// Round to nearest even, as torch does.
void FloatToBf16(const float* x, uint16_t* out, int64_t n, cudaStream_t stream);
void Bf16ToFloat(const uint16_t* x, float* out, int64_t n, cudaStream_t stream);

}  // namespace sympow::kernels
