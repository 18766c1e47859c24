// Chunked prefill on tensor cores (TF32 wmma, fp32 accumulation). One block per (segment, kv
// head, 16-column slice of d) walks its segment chunk by chunk. For each chunk it sweeps the
// state in tiles of 64 features: φ(q) and φ(k) of the tile are expanded in shared memory, the
// queries read the old tile (state form), and the tile advances by the chunk's keys and values.
// Then the attention form inside the chunk (gated, causal) adds to the same accumulators. The
// un-normalised numerators go to `out`; the slice-0 block also keeps the denominators, and a
// last kernel divides.
#include <mma.h>

#include "kernels/grid.cuh"
#include "kernels/power_attention.h"
#include "kernels/power_common.cuh"

namespace sympow::kernels {
namespace {

using namespace nvcuda;

constexpr int kRows = 64;      // query rows of a chunk: group × chunk tokens, padded
constexpr int kTokens = 64;    // key rows of a chunk, padded
constexpr int kFeatures = 64;  // features per state tile
constexpr int kSlice = 16;     // columns of d per block
constexpr int kWarps = 4;      // warp w owns rows [16w, 16w + 16)
constexpr int kBlock = kWarps * 32;

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

template <typename Frag>
__device__ inline void LoadTf32(Frag& frag, const float* p, unsigned ldm) {
  wmma::load_matrix_sync(frag, p, ldm);
  for (int i = 0; i < frag.num_elements; ++i) frag.x[i] = wmma::__float_to_tf32(frag.x[i]);
}

// Shared memory of one block, in floats.
struct Layout {
  int q, k, v, log_gate, query_scale, key_decay, phi_q, phi_k, tile, z, total;
  __host__ __device__ explicit Layout(int d) {
    q = 0;                              // [kRows × d], row m = g·c + t
    k = q + kRows * d;                  // [kTokens × d]
    v = k + kTokens * d;                // [kTokens × kSlice]
    log_gate = v + kTokens * kSlice;    // [kTokens] cumulative inside the chunk
    query_scale = log_gate + kTokens;   // [kTokens] s^p·exp(G_t)
    key_decay = query_scale + kTokens;  // [kTokens] exp(G_last − G_s)
    phi_q = key_decay + kTokens;        // [kRows × kFeatures]; the chunk's scores afterwards
    phi_k = phi_q + kRows * kFeatures;  // [kFeatures × kTokens] (transposed)
    tile = phi_k + kFeatures * kTokens; // [kFeatures × kSlice] of S
    z = tile + kFeatures * kSlice;      // [kFeatures]
    total = z + kFeatures;
  }
};

__global__ void __launch_bounds__(kBlock)
    PrefillKernel(PowerAttentionShape shape, AttentionRows rows, const PrefillSegment* segments,
                  float* denominators) {
  extern __shared__ float shared[];
  const int d = shape.head_dim;
  const int D = shape.expanded_dim;
  const int p = shape.degree;
  const int group = shape.num_heads / shape.num_kv_heads;
  const int chunk = kRows / group;  // tokens per chunk
  const int h = blockIdx.y;
  const int col0 = blockIdx.x * kSlice;
  const bool keeps_denominator = blockIdx.x == 0;
  const PrefillSegment segment = segments[blockIdx.z];
  const Layout at(d);
  float* q = shared + at.q;
  float* k = shared + at.k;
  float* v = shared + at.v;
  float* log_gate = shared + at.log_gate;
  float* query_scale = shared + at.query_scale;
  float* key_decay = shared + at.key_decay;
  float* phi_q = shared + at.phi_q;
  float* phi_k = shared + at.phi_k;
  float* tile = shared + at.tile;
  float* z_tile = shared + at.z;
  float* S = segment.state + static_cast<int64_t>(h) * D * (d + 1);
  float* z = S + static_cast<int64_t>(D) * d;
  const int warp = threadIdx.x / 32;
  const int H = shape.num_heads;

  for (int64_t start = 0; start < segment.num_rows; start += chunk) {
    const int n = static_cast<int>(min(static_cast<int64_t>(chunk), segment.num_rows - start));
    const int64_t first = segment.first_row + start;
    // Load the chunk: queries of every head of the group, keys, this slice of the values.
    for (int i = threadIdx.x; i < kRows * d; i += blockDim.x) {
      const int m = i / d, j = i % d, g = m / chunk, t = m % chunk;
      q[i] = g < group && t < n ? rows.q[((first + t) * H + h * group + g) * d + j] : 0.0f;
    }
    for (int i = threadIdx.x; i < kTokens * d; i += blockDim.x) {
      const int t = i / d, j = i % d;
      k[i] = t < n ? rows.k[((first + t) * shape.num_kv_heads + h) * d + j] : 0.0f;
    }
    for (int i = threadIdx.x; i < kTokens * kSlice; i += blockDim.x) {
      const int t = i / kSlice, j = i % kSlice;
      v[i] = t < n ? rows.v[((first + t) * shape.num_kv_heads + h) * d + col0 + j] : 0.0f;
    }
    if (threadIdx.x == 0) {
      float running = 0.0f;
      for (int t = 0; t < n; ++t) {
        if (rows.log_gate) running += rows.log_gate[(first + t) * shape.num_kv_heads + h];
        log_gate[t] = running;
      }
    }
    __syncthreads();
    const float last = log_gate[n - 1];
    const float end_decay = expf(last);
    for (int t = threadIdx.x; t < kTokens; t += blockDim.x) {
      query_scale[t] = t < n ? shape.scale_pow * expf(log_gate[t]) : 0.0f;
      key_decay[t] = t < n ? expf(last - log_gate[t]) : 0.0f;
    }

    FragC numerator;
    wmma::fill_fragment(numerator, 0.0f);
    float denominator = 0.0f;  // of row threadIdx.x, slice 0 only
    for (int f0 = 0; f0 < D; f0 += kFeatures) {
      const int features = min(kFeatures, D - f0);
      __syncthreads();
      for (int i = threadIdx.x; i < kRows * kFeatures; i += blockDim.x) {
        const int m = i / kFeatures, f = i % kFeatures, t = m % chunk;
        float value = 0.0f;
        if (f < features && m < group * chunk && t < n) {
          value = query_scale[t] * Monomial(q + m * d, shape.monomials + (f0 + f) * p, p);
        }
        phi_q[i] = value;
      }
      for (int i = threadIdx.x; i < kFeatures * kTokens; i += blockDim.x) {
        const int f = i / kTokens, s = i % kTokens;
        float value = 0.0f;
        if (f < features && s < n) {
          value = shape.key_weights[f0 + f] * key_decay[s] *
                  Monomial(k + s * d, shape.monomials + (f0 + f) * p, p);
        }
        phi_k[i] = value;
      }
      for (int i = threadIdx.x; i < kFeatures * kSlice; i += blockDim.x) {
        const int f = i / kSlice, j = i % kSlice;
        tile[i] = f < features ? S[static_cast<int64_t>(f0 + f) * d + col0 + j] : 0.0f;
      }
      if (keeps_denominator && threadIdx.x < kFeatures) {
        z_tile[threadIdx.x] = threadIdx.x < features ? z[f0 + threadIdx.x] : 0.0f;
      }
      __syncthreads();
      // State form: the queries read the tile as it was before this chunk.
      for (int kk = 0; kk < kFeatures; kk += 8) {
        FragA a;
        FragBRow b;
        LoadTf32(a, phi_q + warp * 16 * kFeatures + kk, kFeatures);
        LoadTf32(b, tile + kk * kSlice, kSlice);
        wmma::mma_sync(numerator, a, b, numerator);
      }
      if (keeps_denominator && threadIdx.x < kRows) {
        for (int f = 0; f < kFeatures; ++f) denominator += phi_q[threadIdx.x * kFeatures + f] * z_tile[f];
      }
      __syncthreads();
      // Advance the tile: S ← exp(G_last)·S + Σ_s exp(G_last − G_s)·φ(k_s)·v_sᵀ.
      FragC advanced;
      wmma::load_matrix_sync(advanced, tile + warp * 16 * kSlice, kSlice, wmma::mem_row_major);
      for (int i = 0; i < advanced.num_elements; ++i) advanced.x[i] *= end_decay;
      for (int kk = 0; kk < kTokens; kk += 8) {
        FragA a;
        FragBRow b;
        LoadTf32(a, phi_k + warp * 16 * kTokens + kk, kTokens);
        LoadTf32(b, v + kk * kSlice, kSlice);
        wmma::mma_sync(advanced, a, b, advanced);
      }
      wmma::store_matrix_sync(tile + warp * 16 * kSlice, advanced, kSlice, wmma::mem_row_major);
      if (keeps_denominator && threadIdx.x < features) {
        float added = 0.0f;
        for (int s = 0; s < kTokens; ++s) added += phi_k[threadIdx.x * kTokens + s];
        z[f0 + threadIdx.x] = end_decay * z_tile[threadIdx.x] + added;
      }
      __syncthreads();
      for (int i = threadIdx.x; i < features * kSlice; i += blockDim.x) {
        S[static_cast<int64_t>(f0 + i / kSlice) * d + col0 + i % kSlice] = tile[i];
      }
    }
    __syncthreads();
    // Attention form inside the chunk: scores (s·q·k)^p·exp(G_t − G_s) for s ≤ t, into phi_q.
    float* scores = phi_q;
    for (int c0 = 0; c0 < kTokens; c0 += 16) {
      FragC block_scores;
      wmma::fill_fragment(block_scores, 0.0f);
      for (int kk = 0; kk < d; kk += 8) {
        FragA a;
        FragBCol b;
        LoadTf32(a, q + warp * 16 * d + kk, d);
        LoadTf32(b, k + c0 * d + kk, d);
        wmma::mma_sync(block_scores, a, b, block_scores);
      }
      wmma::store_matrix_sync(scores + warp * 16 * kTokens + c0, block_scores, kTokens,
                              wmma::mem_row_major);
    }
    __syncwarp();
    for (int i = threadIdx.x % 32; i < 16 * kTokens; i += 32) {
      const int m = warp * 16 + i / kTokens, s = i % kTokens, t = m % chunk;
      float& score = scores[m * kTokens + s];
      const bool visible = m < group * chunk && t < n && s <= t;
      score = visible ? EvenPower(shape.scale * score, p) * expf(log_gate[t] - log_gate[s]) : 0.0f;
    }
    __syncwarp();
    for (int kk = 0; kk < kTokens; kk += 8) {
      FragA a;
      FragBRow b;
      LoadTf32(a, scores + warp * 16 * kTokens + kk, kTokens);
      LoadTf32(b, v + kk * kSlice, kSlice);
      wmma::mma_sync(numerator, a, b, numerator);
    }
    __syncthreads();
    if (keeps_denominator && threadIdx.x < kRows) {
      for (int s = 0; s < kTokens; ++s) denominator += scores[threadIdx.x * kTokens + s];
    }
    // Un-normalised numerators out, staged through the tile buffer (kRows × kSlice floats).
    float* staged = phi_k;
    wmma::store_matrix_sync(staged + warp * 16 * kSlice, numerator, kSlice, wmma::mem_row_major);
    __syncthreads();
    for (int i = threadIdx.x; i < kRows * kSlice; i += blockDim.x) {
      const int m = i / kSlice, j = i % kSlice, g = m / chunk, t = m % chunk;
      if (g < group && t < n) rows.out[((first + t) * H + h * group + g) * d + col0 + j] = staged[i];
    }
    if (keeps_denominator && threadIdx.x < kRows) {
      const int g = threadIdx.x / chunk, t = threadIdx.x % chunk;
      if (g < group && t < n) denominators[(first + t) * H + h * group + g] = denominator;
    }
    __syncthreads();
  }
}

// out ← out / (denominator + ε) over every segment's rows; grid.y = segment.
__global__ void PrefillFinishKernel(int heads, int head_dim, const PrefillSegment* segments,
                                    const float* denominators, float* out) {
  const PrefillSegment segment = segments[blockIdx.y];
  const int64_t width = static_cast<int64_t>(heads) * head_dim;
  for (int64_t i = GlobalThread(); i < segment.num_rows * width; i += GridThreads()) {
    const int64_t row = segment.first_row + i / width;
    const int64_t element = row * width + i % width;
    out[element] /= denominators[row * heads + (i % width) / head_dim] + kNormalizerEpsilon;
  }
}

}  // namespace

void PowerPrefill(const PowerAttentionShape& shape, const AttentionRows& rows,
                  const PrefillSegment* segments, int64_t count, int64_t max_segment_rows,
                  float* denominators, cudaStream_t stream) {
  if (count == 0) return;
  const size_t shared = sizeof(float) * Layout(shape.head_dim).total;
  cudaFuncSetAttribute(PrefillKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       static_cast<int>(shared));
  const dim3 grid(shape.head_dim / kSlice, shape.num_kv_heads, static_cast<unsigned>(count));
  PrefillKernel<<<grid, kBlock, shared, stream>>>(shape, rows, segments, denominators);
  const dim3 finish(GridFor(max_segment_rows * shape.num_heads * shape.head_dim),
                    static_cast<unsigned>(count));
  PrefillFinishKernel<<<finish, kThreads, 0, stream>>>(shape.num_heads, shape.head_dim, segments,
                                                       denominators, rows.out);
}

}  // namespace sympow::kernels
