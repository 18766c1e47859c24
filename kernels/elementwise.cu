#include <cuda_bf16.h>

#include "kernels/elementwise.h"
#include "kernels/grid.cuh"

namespace sympow::kernels {
namespace {

__global__ void EmbedKernel(const __nv_bfloat16* table, const int32_t* tokens, int64_t rows,
                            int64_t width, float* out) {
  for (int64_t i = GlobalThread(); i < rows * width; i += GridThreads()) {
    const int64_t r = i / width;
    out[i] = __bfloat162float(table[tokens[r] * width + i % width]);
  }
}

__device__ inline void Store(float* to, float value) { *to = value; }
__device__ inline void Store(__nv_bfloat16* to, float value) { *to = __float2bfloat16_rn(value); }

// One block per row; the mean and the sum of squares in double, as the CPU backend does.
template <typename Out>
__global__ void NormKernel(bool layer_norm, float eps, const float* x, int64_t cols,
                           const float* weight, const float* bias, Out* out) {
  const float* row = x + blockIdx.x * cols;
  Out* out_row = out + blockIdx.x * cols;
  double mean = 0.0;
  if (layer_norm) {
    double sum = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += row[j];
    mean = BlockSum(sum) / static_cast<double>(cols);
  }
  double squares = 0.0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const double centred = row[j] - mean;
    squares += centred * centred;
  }
  const float inverse =
      static_cast<float>(rsqrt(BlockSum(squares) / static_cast<double>(cols) + eps));
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    Store(out_row + j,
          static_cast<float>(row[j] - mean) * inverse * weight[j] + (bias ? bias[j] : 0.0f));
  }
}

// One warp per head slice.
__global__ void HeadRmsNormKernel(float* x, int64_t slices, int64_t head_dim, const float* weight,
                                  float eps) {
  const int64_t slice = GlobalThread() / 32;
  if (slice >= slices) return;
  const int lane = threadIdx.x % 32;
  float* head = x + slice * head_dim;
  double squares = 0.0;
  for (int64_t j = lane; j < head_dim; j += 32) squares += static_cast<double>(head[j]) * head[j];
  squares = WarpSum(squares);
  const float inverse = static_cast<float>(rsqrt(squares / static_cast<double>(head_dim) + eps));
  for (int64_t j = lane; j < head_dim; j += 32) head[j] = head[j] * inverse * weight[j];
}

__global__ void RopeKernel(float* x, int64_t rows, int64_t cols, int64_t head_dim,
                           const int64_t* positions, double theta) {
  const int64_t half = head_dim / 2;
  const int64_t heads = cols / head_dim;
  for (int64_t i = GlobalThread(); i < rows * heads * half; i += GridThreads()) {
    const int64_t r = i / (heads * half);
    const int64_t h = (i / half) % heads;
    const int64_t k = i % half;
    const double angle = static_cast<double>(positions[r]) *
                         pow(theta, -2.0 * static_cast<double>(k) / static_cast<double>(head_dim));
    const float cos_a = static_cast<float>(cos(angle));
    const float sin_a = static_cast<float>(sin(angle));
    float* head = x + r * cols + h * head_dim;
    const float first = head[k];
    const float second = head[k + half];
    head[k] = first * cos_a - second * sin_a;
    head[k + half] = second * cos_a + first * sin_a;
  }
}

__global__ void LogSigmoidGateKernel(float* x, int64_t n, float gate_bias) {
  for (int64_t i = GlobalThread(); i < n; i += GridThreads()) {
    const float y = x[i] + gate_bias;
    x[i] = y >= 0 ? -log1pf(expf(-y)) : y - log1pf(expf(y));
  }
}

// Row-wise kernels walk rows across blocks and columns across a block's threads: no division
// per element (64-bit divisions made these kernels compute-bound in long prefills).
template <typename Out>
__global__ void SwiGluKernel(const float* gate_up, int64_t rows, int64_t width, Out* out) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* gate = gate_up + r * 2 * width;
    const float* up = gate + width;
    for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
      const float g = gate[j];
      Store(out + r * width + j, g / (1.0f + expf(-g)) * up[j]);
    }
  }
}

__global__ void SplitColumnsKernel(const float* x, int64_t rows, int64_t cols, SplitParts parts) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* from = x + r * cols;
    for (int p = 0; p < parts.count; ++p) {
      const int64_t width = parts.widths[p];
      float* to = parts.out[p] + r * width;
      for (int64_t j = threadIdx.x; j < width; j += blockDim.x) to[j] = from[j];
      from += width;
    }
  }
}

__global__ void AddBiasKernel(float* out, const float* bias, int64_t rows, int64_t cols) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) out[r * cols + j] += bias[j];
  }
}

// Blocks for a kernel that walks rows across blocks.
unsigned RowBlocks(int64_t rows) { return static_cast<unsigned>(rows < 65535 ? rows : 65535); }

__global__ void GeluTanhKernel(float* x, int64_t n) {
  const float k = 0.7978845608028654f;  // sqrt(2/π)
  for (int64_t i = GlobalThread(); i < n; i += GridThreads()) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
  }
}

__global__ void AddKernel(float* accumulate, const float* x, int64_t n) {
  for (int64_t i = GlobalThread(); i < n; i += GridThreads()) accumulate[i] += x[i];
}

__global__ void GatherRowsKernel(const float* x, const int64_t* rows, int64_t count, int64_t cols,
                                 float* out) {
  for (int64_t i = GlobalThread(); i < count * cols; i += GridThreads()) {
    out[i] = x[rows[i / cols] * cols + i % cols];
  }
}

__global__ void FloatToBf16Kernel(const float* x, __nv_bfloat16* out, int64_t n) {
  for (int64_t i = GlobalThread(); i < n; i += GridThreads()) out[i] = __float2bfloat16_rn(x[i]);
}

__global__ void Bf16ToFloatKernel(const __nv_bfloat16* x, float* out, int64_t n) {
  for (int64_t i = GlobalThread(); i < n; i += GridThreads()) out[i] = __bfloat162float(x[i]);
}

}  // namespace

void Embed(const uint16_t* table_bf16, const int32_t* tokens, int64_t rows, int64_t width,
           float* out, cudaStream_t stream) {
  EmbedKernel<<<GridFor(rows * width), kThreads, 0, stream>>>(
      reinterpret_cast<const __nv_bfloat16*>(table_bf16), tokens, rows, width, out);
}

void Norm(bool layer_norm, float eps, const float* x, int64_t rows, int64_t cols,
          const float* weight, const float* bias, float* out, cudaStream_t stream) {
  if (rows == 0) return;
  NormKernel<<<rows, kThreads, 0, stream>>>(layer_norm, eps, x, cols, weight, bias, out);
}

void Norm(bool layer_norm, float eps, const float* x, int64_t rows, int64_t cols,
          const float* weight, const float* bias, uint16_t* out_bf16, cudaStream_t stream) {
  if (rows == 0) return;
  NormKernel<<<rows, kThreads, 0, stream>>>(layer_norm, eps, x, cols, weight, bias,
                                            reinterpret_cast<__nv_bfloat16*>(out_bf16));
}

void HeadRmsNorm(float* x, int64_t rows, int64_t cols, int64_t head_dim, const float* weight,
                 float eps, cudaStream_t stream) {
  const int64_t slices = rows * cols / head_dim;
  HeadRmsNormKernel<<<GridFor(slices * 32), kThreads, 0, stream>>>(x, slices, head_dim, weight,
                                                                   eps);
}

void Rope(float* x, int64_t rows, int64_t cols, int64_t head_dim, const int64_t* positions,
          double theta, cudaStream_t stream) {
  RopeKernel<<<GridFor(rows * cols / 2), kThreads, 0, stream>>>(x, rows, cols, head_dim, positions,
                                                                theta);
}

void LogSigmoidGate(float* x, int64_t n, float gate_bias, cudaStream_t stream) {
  LogSigmoidGateKernel<<<GridFor(n), kThreads, 0, stream>>>(x, n, gate_bias);
}

void SwiGlu(const float* gate_up, int64_t rows, int64_t width, float* out, cudaStream_t stream) {
  if (rows == 0) return;
  SwiGluKernel<<<RowBlocks(rows), kThreads, 0, stream>>>(gate_up, rows, width, out);
}

void SwiGlu(const float* gate_up, int64_t rows, int64_t width, uint16_t* out_bf16,
            cudaStream_t stream) {
  if (rows == 0) return;
  SwiGluKernel<<<RowBlocks(rows), kThreads, 0, stream>>>(
      gate_up, rows, width, reinterpret_cast<__nv_bfloat16*>(out_bf16));
}

void SplitColumns(const float* x, int64_t rows, int64_t cols, const SplitParts& parts,
                  cudaStream_t stream) {
  if (rows == 0) return;
  SplitColumnsKernel<<<RowBlocks(rows), kThreads, 0, stream>>>(x, rows, cols, parts);
}

void GeluTanh(float* x, int64_t n, cudaStream_t stream) {
  GeluTanhKernel<<<GridFor(n), kThreads, 0, stream>>>(x, n);
}

void Add(float* accumulate, const float* x, int64_t n, cudaStream_t stream) {
  AddKernel<<<GridFor(n), kThreads, 0, stream>>>(accumulate, x, n);
}

void AddBias(float* out, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows == 0) return;
  AddBiasKernel<<<RowBlocks(rows), kThreads, 0, stream>>>(out, bias, rows, cols);
}

void GatherRows(const float* x, const int64_t* rows, int64_t count, int64_t cols, float* out,
                cudaStream_t stream) {
  GatherRowsKernel<<<GridFor(count * cols), kThreads, 0, stream>>>(x, rows, count, cols, out);
}

void FloatToBf16(const float* x, uint16_t* out, int64_t n, cudaStream_t stream) {
  FloatToBf16Kernel<<<GridFor(n), kThreads, 0, stream>>>(x, reinterpret_cast<__nv_bfloat16*>(out),
                                                         n);
}

void Bf16ToFloat(const uint16_t* x, float* out, int64_t n, cudaStream_t stream) {
  Bf16ToFloatKernel<<<GridFor(n), kThreads, 0, stream>>>(reinterpret_cast<const __nv_bfloat16*>(x),
                                                         out, n);
}

}  // namespace sympow::kernels
