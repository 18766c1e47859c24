// The fold of a decode buffer (MODEL.md, deferred updates): S ← e^{A} S + Σ_s e^{A_s} φ(k_s) v_sᵀ
// and z ← e^{A} z + Σ_s e^{A_s} φ(k_s), where A sums the buffered tokens' log gates and A_s those
// after token s. Work items are (buffer, tile of kFoldFeatures features), taken by a fixed grid
// from a list whose length may be known only on the device (decode writes it).
#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/grid.cuh"
#include "kernels/power_common.cuh"
#include "kernels/power_fold.cuh"

namespace sympow::kernels {
namespace {

constexpr int kFoldFeatures = 64;
constexpr int kFoldBatch = 32;  // buffered tokens staged in shared memory at a time
constexpr int kMaxHeadDim = 128;
constexpr int kMaxBufferTokens = 256;
// Rows of the tile a thread advances: 64 features over 256 threads in column groups of 4.
constexpr int kMaxRowsPerThread = kFoldFeatures * kMaxHeadDim / 4 / kThreads;


template <typename Storage>
__global__ void __launch_bounds__(kThreads)
    FoldKernel(PowerAttentionShape shape, const FoldItem* items, const int* item_count,
               LayerOffsets layer) {
  __shared__ float decay[kMaxBufferTokens];  // token s's, to the last buffered token
  __shared__ float end_decay;                // S's and z's
  __shared__ float coefficients[kFoldFeatures][kFoldBatch + 1];  // e^{A_s}·φ_f(k_s)
  __shared__ float values[kFoldBatch][kMaxHeadDim];
  const int d = shape.head_dim;
  const int D = shape.expanded_dim;
  const int N = shape.buffer_tokens;
  const int tiles = (D + kFoldFeatures - 1) / kFoldFeatures;
  const int lanes = d / 4;
  const int col = (threadIdx.x % lanes) * 4;
  const int row_step = kThreads / lanes;
  const int64_t work_count = int64_t{*item_count} * tiles;
  for (int64_t work = blockIdx.x; work < work_count; work += gridDim.x) {
    const FoldItem item = items[work / tiles];
    const int first_feature = static_cast<int>(work % tiles) * kFoldFeatures;
    const int features = min(kFoldFeatures, D - first_feature);
    const float* buffer = reinterpret_cast<const float*>(static_cast<char*>(item.slot) +
                                                         layer.buffer) +
                          item.kv_head * BufferFloatsPerHead(shape);
    const int n = item.tokens >= 0 ? item.tokens : static_cast<int>(buffer[0]);
    if (n == 0) continue;
    const float* log_gates = buffer + kBufferHeaderFloats;
    const float* keys = log_gates + N;
    const float* buffered_values = keys + N * d;
    __syncthreads();  // the last item's reads of shared memory are done
    if (threadIdx.x == 0) {
      float later = 0.0f;
      for (int s = n - 1; s >= 0; --s) {
        decay[s] = expf(later);
        later += log_gates[s];
      }
      end_decay = expf(later);
    }
    __syncthreads();
    Storage* S = reinterpret_cast<Storage*>(static_cast<char*>(item.slot) + layer.state) +
                 static_cast<int64_t>(item.kv_head) * D * (d + 1);
    Storage* z = S + static_cast<int64_t>(D) * d;
    float sums[kMaxRowsPerThread][4];
    float z_sums[kMaxRowsPerThread];
#pragma unroll
    for (int r = 0; r < kMaxRowsPerThread; ++r) {
      const int f = threadIdx.x / lanes + r * row_step;
      const bool mine = f < features;
      const Storage* row = S + static_cast<int64_t>(first_feature + f) * d + col;
#pragma unroll
      for (int j = 0; j < 4; ++j) sums[r][j] = mine ? end_decay * LoadOne(row + j) : 0.0f;
      z_sums[r] = mine && col == 0 ? end_decay * LoadOne(z + first_feature + f) : 0.0f;
    }
    for (int first = 0; first < n; first += kFoldBatch) {
      const int batch = min(kFoldBatch, n - first);
      __syncthreads();
      for (int i = threadIdx.x; i < batch * d; i += blockDim.x) {
        values[i / d][i % d] = buffered_values[(first + i / d) * d + i % d];
      }
      for (int i = threadIdx.x; i < features * batch; i += blockDim.x) {
        const int f = i / batch, s = i % batch;
        const int feature = first_feature + f;
        coefficients[f][s] = decay[first + s] * shape.key_weights[feature] *
                             Monomial(keys + (first + s) * d, shape.monomials + feature * shape.degree,
                                      shape.degree);
      }
      __syncthreads();
#pragma unroll
      for (int r = 0; r < kMaxRowsPerThread; ++r) {
        const int f = threadIdx.x / lanes + r * row_step;
        if (f >= features) continue;
        for (int s = 0; s < batch; ++s) {
          const float c = coefficients[f][s];
#pragma unroll
          for (int j = 0; j < 4; ++j) sums[r][j] += c * values[s][col + j];
          z_sums[r] += c;
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kMaxRowsPerThread; ++r) {
      const int f = threadIdx.x / lanes + r * row_step;
      if (f >= features) continue;
      Storage* row = S + static_cast<int64_t>(first_feature + f) * d + col;
#pragma unroll
      for (int j = 0; j < 4; ++j) StoreOne(row + j, sums[r][j]);
      if (col == 0) StoreOne(z + first_feature + f, z_sums[r]);
    }
  }
}

__global__ void ClearBufferCounts(PowerAttentionShape shape, const FoldItem* items,
                                  const int* item_count, LayerOffsets layer) {
  for (int64_t i = GlobalThread(); i < *item_count; i += GridThreads()) {
    float* buffer = reinterpret_cast<float*>(static_cast<char*>(items[i].slot) + layer.buffer) +
                    items[i].kv_head * BufferFloatsPerHead(shape);
    buffer[0] = 0.0f;
  }
}

}  // namespace

void LaunchFold(const PowerAttentionShape& shape, const FoldItem* items, const int* item_count,
                int64_t most_items, LayerOffsets layer, bool bf16_state, cudaStream_t stream) {
  if (most_items == 0) return;
  const int64_t tiles = (shape.expanded_dim + kFoldFeatures - 1) / kFoldFeatures;
  const unsigned blocks =
      static_cast<unsigned>(std::clamp<int64_t>(most_items * tiles, 1, MultiprocessorCount() * 4));
  if (bf16_state) {
    FoldKernel<__nv_bfloat16><<<blocks, kThreads, 0, stream>>>(shape, items, item_count, layer);
  } else {
    FoldKernel<float><<<blocks, kThreads, 0, stream>>>(shape, items, item_count, layer);
  }
}

void FoldDecodeBuffers(const PowerAttentionShape& shape, const FoldItem* items,
                       const int* item_count, int64_t most_items, LayerOffsets layer,
                       bool bf16_state, cudaStream_t stream) {
  LaunchFold(shape, items, item_count, most_items, layer, bf16_state, stream);
  if (most_items > 0) {
    ClearBufferCounts<<<GridFor(most_items), kThreads, 0, stream>>>(shape, items, item_count,
                                                                     layer);
  }
}

}  // namespace sympow::kernels
