// PowerPrefill and its planning: degree 2 at head_dim 64 and 128 goes to the BF16 tensor-core
// kernels (power_prefill_mma.cu); every other shape to the general path here.
//
// The general chunk-parallel prefill on tensor cores (TF32 wmma, fp32 accumulation), in three
// kernels:
//  1. ChunkStateKernel, per (feature tile, kv head, chunk): ΔS = Σ_s exp(G_last − G_s)·φ(k_s)v_sᵀ
//     and Δz the same with v = 1 (a column of ones next to v gives z from the same products);
//  2. ScanKernel, per state element: walks each segment's chunks in order, leaving the state
//     before each chunk in the workspace and the final state in the segment's slot;
//  3. ChunkOutputKernel, per (query head, chunk): s^p·exp(G_t)·φ(q_t)·[S | z] over the state
//     before the chunk, plus the gated causal attention (s·q·k)^p·exp(G_t − G_s) inside it, with
//     the ones column again giving the denominator.
#include <mma.h>

#include "kernels/grid.cuh"
#include "kernels/power_attention.h"
#include "kernels/power_common.cuh"
#include "kernels/power_prefill_mma.h"

namespace sympow::kernels {
namespace {

using namespace nvcuda;

using FragARow = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragACol = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

template <typename Frag>
__device__ inline void LoadTf32(Frag& frag, const float* p, unsigned ldm) {
  wmma::load_matrix_sync(frag, p, ldm);
  for (int i = 0; i < frag.num_elements; ++i) frag.x[i] = wmma::__float_to_tf32(frag.x[i]);
}

// Per head dimension: tokens per chunk (shared memory bounds it), and the width of [v | 1 | 0…].
template <int kD>
struct Dims {
  static constexpr int kChunk = kD <= 64 ? 128 : 64;
  static constexpr int kWide = kD + 16;
  static constexpr int kColumnBlocks = kWide / 16;
  static constexpr int kStateTile = 64;              // features per ChunkStateKernel step
  static constexpr int kStateTilesPerBlock = 4;      // steps per block, sharing its loaded k and v
  static constexpr int kQueryTile = 32;              // features per step of ChunkOutputKernel
  static constexpr int kOutputThreads = 2 * kChunk;  // a warp per 16 rows
};

__device__ inline float4 LoadRow4(const float* row, int j4, bool valid) {
  return valid ? reinterpret_cast<const float4*>(row)[j4] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
}

// Rows [C × d] of q, k or v for one head into shared memory with row stride `stride`, zero past
// n rows; 16-byte loads, all of a thread's loads issued before any is used.
template <int kD, int kThreadsPerBlock>
__device__ void LoadHeadRows(const float* source, int64_t row_width, int head,
                             const PrefillChunk& chunk, float* to, int stride) {
  constexpr int kChunk = Dims<kD>::kChunk;
  constexpr int kPerRow = kD / 4;
  constexpr int kLoads = kChunk * kPerRow / kThreadsPerBlock;
  static_assert(kChunk * kPerRow % kThreadsPerBlock == 0);
  float4 loaded[kLoads];
#pragma unroll
  for (int r = 0; r < kLoads; ++r) {
    const int i = threadIdx.x + r * kThreadsPerBlock, t = i / kPerRow;
    loaded[r] = LoadRow4(source + ((chunk.first_row + t) * row_width + head) * kD, i % kPerRow,
                         t < chunk.num_rows);
  }
#pragma unroll
  for (int r = 0; r < kLoads; ++r) {
    const int i = threadIdx.x + r * kThreadsPerBlock;
    *reinterpret_cast<float4*>(to + (i / kPerRow) * stride + (i % kPerRow) * 4) = loaded[r];
  }
}

// Loads a chunk's keys [C × d] and values with the ones column [C × (d+16)], zero past n rows,
// and the cumulative log gates of its tokens (a warp-wide scan). Every thread takes part.
template <int kD, int kThreadsPerBlock>
__device__ void LoadKeysValues(const PowerAttentionShape& shape, const AttentionRows& rows,
                               const PrefillChunk& chunk, int kv_head, float* k, float* v_wide,
                               float* log_gate) {
  using C = Dims<kD>;
  LoadHeadRows<kD, kThreadsPerBlock>(rows.k, shape.num_kv_heads, kv_head, chunk, k, kD);
  LoadHeadRows<kD, kThreadsPerBlock>(rows.v, shape.num_kv_heads, kv_head, chunk, v_wide, C::kWide);
  for (int i = threadIdx.x; i < C::kChunk * 16; i += kThreadsPerBlock) {
    const int t = i / 16, j = i % 16;
    v_wide[t * C::kWide + kD + j] = j == 0 && t < chunk.num_rows ? 1.0f : 0.0f;
  }
  if (threadIdx.x < 32) {
    ChunkLogGates<C::kChunk>(rows.log_gate, shape.num_kv_heads, kv_head, chunk.first_row,
                             chunk.num_rows, log_gate);
  }
}

// The factors of features [f0, f0 + count) as [degree × count] (conflict-free reads) and, for
// keys, their multinomial weights; features past D get weight 0 and factor 0.
__device__ void LoadFeatureTile(const PowerAttentionShape& shape, int f0, int count, int* factors,
                                float* weights) {
  for (int i = threadIdx.x; i < count * shape.degree; i += blockDim.x) {
    const int j = i / count, f = i % count;
    factors[i] = f0 + f < shape.expanded_dim ? shape.monomials[(f0 + f) * shape.degree + j] : 0;
  }
  if (weights == nullptr) return;
  for (int f = threadIdx.x; f < count; f += blockDim.x) {
    weights[f] = f0 + f < shape.expanded_dim ? shape.key_weights[f0 + f] : 0.0f;
  }
}

__device__ inline float TileMonomial(const float* x, const int* factors, int f, int count,
                                     int degree) {
  float product = x[factors[f]];
  for (int j = 1; j < degree; ++j) product *= x[factors[j * count + f]];
  return product;
}

// grid (feature tiles of 64, kv heads, chunks), 4 warps. Writes ΔS, Δz of the chunk into its
// workspace state and exp(total log gate) into decays.
template <int kD>
__global__ void __launch_bounds__(128)
    ChunkStateKernel(PowerAttentionShape shape, AttentionRows rows, const PrefillChunk* chunks,
                     float* workspace, float* decays) {
  using C = Dims<kD>;
  constexpr int kTile = C::kStateTile;
  extern __shared__ float shared[];
  float* k = shared;                                         // [C × d]
  float* v_wide = k + C::kChunk * kD;                        // [C × (d+16)]
  float* log_gate = v_wide + C::kChunk * C::kWide;           // [C]
  float* key_decay = log_gate + C::kChunk;                   // [C]
  float* phi_k = key_decay + C::kChunk;                      // [C × tile], token-major
  float* weights = phi_k + C::kChunk * kTile;                // [tile]
  float* staging = weights + kTile;                          // [4 warps × 16 × 16]
  int* factors = reinterpret_cast<int*>(staging + 4 * 256);  // [p × tile]

  const PrefillChunk chunk = chunks[blockIdx.z];
  const int h = blockIdx.y;
  const int n = chunk.num_rows;
  const int D = shape.expanded_dim;
  const int64_t state_elements = static_cast<int64_t>(D) * (kD + 1);
  float* delta =
      workspace + (static_cast<int64_t>(blockIdx.z) * shape.num_kv_heads + h) * state_elements;

  LoadKeysValues<kD, 128>(shape, rows, chunk, h, k, v_wide, log_gate);
  __syncthreads();
  const float last = log_gate[n - 1];
  for (int t = threadIdx.x; t < C::kChunk; t += blockDim.x) {
    key_decay[t] = t < n ? expf(last - log_gate[t]) : 0.0f;
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) decays[blockIdx.z * shape.num_kv_heads + h] = expf(last);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* mine = staging + warp * 256;
  const int first = blockIdx.x * kTile * C::kStateTilesPerBlock;
  for (int f0 = first; f0 < min(D, first + kTile * C::kStateTilesPerBlock); f0 += kTile) {
    __syncthreads();
    LoadFeatureTile(shape, f0, kTile, factors, weights);
    __syncthreads();
    for (int i = threadIdx.x; i < C::kChunk * kTile; i += blockDim.x) {
      const int s = i / kTile, f = i % kTile;
      phi_k[i] =
          key_decay[s] * weights[f] * TileMonomial(k + s * kD, factors, f, kTile, shape.degree);
    }
    __syncthreads();
    // Warp w: features [16w, 16w + 16) of the tile against every column block of [v | 1].
#pragma unroll
    for (int block = 0; block < C::kColumnBlocks; ++block) {
      FragC sum;
      wmma::fill_fragment(sum, 0.0f);
#pragma unroll
      for (int kk = 0; kk < C::kChunk; kk += 8) {
        FragACol a;  // φ(k)ᵀ: element (f, s) sits at phi_k[s·tile + f]
        FragBRow b;
        LoadTf32(a, phi_k + kk * kTile + warp * 16, kTile);
        LoadTf32(b, v_wide + kk * C::kWide + block * 16, C::kWide);
        wmma::mma_sync(sum, a, b, sum);
      }
      wmma::store_matrix_sync(mine, sum, 16, wmma::mem_row_major);
      __syncwarp();
      for (int i = lane; i < 256; i += 32) {
        const int f = f0 + warp * 16 + i / 16, j = block * 16 + i % 16;
        if (f >= D || j > kD) continue;
        if (j < kD) {
          delta[static_cast<int64_t>(f) * kD + j] = mine[i];
        } else {
          delta[static_cast<int64_t>(D) * kD + f] = mine[i];
        }
      }
      __syncwarp();
    }
  }
}

// grid (element blocks, kv heads, segments): S_before(chunk 0) = slot state;
// S_before(n+1) = decay_n·S_before(n) + ΔS_n; the slot ends with the state after the last chunk.
__global__ void ScanKernel(const PrefillSegment* segments, int kv_heads, int64_t state_elements,
                           float* workspace, const float* decays) {
  const PrefillSegment segment = segments[blockIdx.z];
  const int h = blockIdx.y;
  for (int64_t e = GlobalThread(); e < state_elements; e += GridThreads()) {
    float* state = segment.state + h * state_elements + e;
    float x = *state;
    for (int c = segment.first_chunk; c < segment.first_chunk + segment.num_chunks; ++c) {
      float* slot = workspace + (static_cast<int64_t>(c) * kv_heads + h) * state_elements + e;
      const float delta = *slot;
      *slot = x;
      x = decays[c * kv_heads + h] * x + delta;
    }
    *state = x;
  }
}

// A tile of kQueryTile rows of [S | z] and their factors, fetched into registers and stored
// into shared memory later, so the loads overlap the previous tile's work.
template <int kD, int kThreadsPerBlock>
struct StateTileLoader {
  static constexpr int kTile = Dims<kD>::kQueryTile;
  static constexpr int kPerRow = kD / 4;
  static constexpr int kLoads = kTile * kPerRow / kThreadsPerBlock;
  static_assert(kTile * kPerRow % kThreadsPerBlock == 0);
  static constexpr int kFactorLoads =
      (kMaxDegree * kTile + kThreadsPerBlock - 1) / kThreadsPerBlock;
  float4 rows[kLoads];
  float z = 0.0f;
  int factors[kFactorLoads] = {};
  int f0 = 0;

  __device__ void Fetch(const PowerAttentionShape& shape, const float* state, int first) {
    f0 = first;
    const int D = shape.expanded_dim;
#pragma unroll
    for (int r = 0; r < kLoads; ++r) {
      const int i = threadIdx.x + r * kThreadsPerBlock, f = f0 + i / kPerRow;
      rows[r] = LoadRow4(state + static_cast<int64_t>(f) * kD, i % kPerRow, f < D);
    }
    if (threadIdx.x < kTile)
      z = f0 + threadIdx.x < D ? state[static_cast<int64_t>(D) * kD + f0 + threadIdx.x] : 0.0f;
#pragma unroll
    for (int r = 0; r < kFactorLoads; ++r) {
      const int i = threadIdx.x + r * kThreadsPerBlock;
      const int j = i / kTile, f = f0 + i % kTile;
      if (j < shape.degree) factors[r] = f < D ? shape.monomials[f * shape.degree + j] : 0;
    }
  }

  __device__ void Store(const PowerAttentionShape& shape, float* tile, int* tile_factors) const {
    constexpr int kWide = Dims<kD>::kWide;
#pragma unroll
    for (int r = 0; r < kLoads; ++r) {
      const int i = threadIdx.x + r * kThreadsPerBlock;
      *reinterpret_cast<float4*>(tile + (i / kPerRow) * kWide + (i % kPerRow) * 4) = rows[r];
    }
    if (threadIdx.x < kTile) tile[threadIdx.x * kWide + kD] = z;
#pragma unroll
    for (int r = 0; r < kFactorLoads; ++r) {
      const int i = threadIdx.x + r * kThreadsPerBlock;
      if (i < shape.degree * kTile) tile_factors[i] = factors[r];
    }
  }
};

// grid (query heads, chunks), C/16 warps; warp w owns the chunk's rows [16w, 16w + 16).
template <int kD>
__global__ void ChunkOutputKernel(PowerAttentionShape shape, AttentionRows rows,
                                  const PrefillChunk* chunks, const float* workspace) {
  using C = Dims<kD>;
  constexpr int kTile = C::kQueryTile;
  constexpr int kThreads = C::kOutputThreads;
  extern __shared__ float shared[];
  float* q = shared;                                // [C × d]; the results at the end
  float* k = q + C::kChunk * kD;                    // [C × d]
  float* v_wide = k + C::kChunk * kD;               // [C × (d+16)]
  float* log_gate = v_wide + C::kChunk * C::kWide;  // [C]
  float* query_scale = log_gate + C::kChunk;        // [C]
  float* state_tile = query_scale + C::kChunk;      // [tile × (d+16)]: S rows, z, zeros
  float* phi_q = state_tile + kTile * C::kWide;     // [C × tile]
  float* scores = phi_q + C::kChunk * kTile;        // [C × C]
  int* factors = reinterpret_cast<int*>(scores + C::kChunk * C::kChunk);  // [p × tile]

  const int head = blockIdx.x;
  const int kv_head = head / (shape.num_heads / shape.num_kv_heads);
  const PrefillChunk chunk = chunks[blockIdx.y];
  const int n = chunk.num_rows;
  const int D = shape.expanded_dim;
  const int64_t state_elements = static_cast<int64_t>(D) * (kD + 1);
  const float* before =
      workspace +
      (static_cast<int64_t>(blockIdx.y) * shape.num_kv_heads + kv_head) * state_elements;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  LoadHeadRows<kD, kThreads>(rows.q, shape.num_heads, head, chunk, q, kD);
  LoadKeysValues<kD, kThreads>(shape, rows, chunk, kv_head, k, v_wide, log_gate);
  for (int i = threadIdx.x; i < kTile * 16; i += kThreads) {
    state_tile[(i / 16) * C::kWide + kD + i % 16] = 0.0f;  // z goes in column d; the rest stay 0
  }
  __syncthreads();
  for (int t = threadIdx.x; t < C::kChunk; t += kThreads) {
    query_scale[t] = t < n ? shape.scale_pow * expf(log_gate[t]) : 0.0f;
  }

  FragC result[C::kColumnBlocks];
#pragma unroll
  for (int block = 0; block < C::kColumnBlocks; ++block) wmma::fill_fragment(result[block], 0.0f);
  // State form: the state before the chunk, a tile of features at a time; the next tile's loads
  // are in flight while this one is multiplied.
  StateTileLoader<kD, kThreads> loader;
  loader.Fetch(shape, before, 0);
  for (int f0 = 0; f0 < D; f0 += kTile) {
    __syncthreads();
    loader.Store(shape, state_tile, factors);
    __syncthreads();
    if (f0 + kTile < D) loader.Fetch(shape, before, f0 + kTile);
    for (int i = threadIdx.x; i < C::kChunk * kTile; i += blockDim.x) {
      const int t = i / kTile, f = i % kTile;
      phi_q[i] = f0 + f < D
                     ? query_scale[t] * TileMonomial(q + t * kD, factors, f, kTile, shape.degree)
                     : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTile; kk += 8) {
      FragARow a;
      LoadTf32(a, phi_q + warp * 16 * kTile + kk, kTile);
#pragma unroll
      for (int block = 0; block < C::kColumnBlocks; ++block) {
        FragBRow b;
        LoadTf32(b, state_tile + kk * C::kWide + block * 16, C::kWide);
        wmma::mma_sync(result[block], a, b, result[block]);
      }
    }
  }
// Attention form inside the chunk, on the warp's own rows of the scores.
#pragma unroll
  for (int c0 = 0; c0 < C::kChunk; c0 += 16) {
    FragC block_scores;
    wmma::fill_fragment(block_scores, 0.0f);
#pragma unroll
    for (int kk = 0; kk < kD; kk += 8) {
      FragARow a;
      FragBCol b;  // kᵀ: element (j, s) sits at k[s·d + j]
      LoadTf32(a, q + warp * 16 * kD + kk, kD);
      LoadTf32(b, k + c0 * kD + kk, kD);
      wmma::mma_sync(block_scores, a, b, block_scores);
    }
    wmma::store_matrix_sync(scores + warp * 16 * C::kChunk + c0, block_scores, C::kChunk,
                            wmma::mem_row_major);
  }
  __syncwarp();
  for (int i = lane; i < 16 * C::kChunk; i += 32) {
    const int t = warp * 16 + i / C::kChunk, s = i % C::kChunk;
    float& score = scores[t * C::kChunk + s];
    score = t < n && s <= t
                ? EvenPower(shape.scale * score, shape.degree) * expf(log_gate[t] - log_gate[s])
                : 0.0f;
  }
  __syncwarp();
#pragma unroll
  for (int kk = 0; kk < C::kChunk; kk += 8) {
    FragARow a;
    LoadTf32(a, scores + warp * 16 * C::kChunk + kk, C::kChunk);
#pragma unroll
    for (int block = 0; block < C::kColumnBlocks; ++block) {
      FragBRow b;
      LoadTf32(b, v_wide + kk * C::kWide + block * 16, C::kWide);
      wmma::mma_sync(result[block], a, b, result[block]);
    }
  }
  __syncthreads();  // everyone is done with q and k: they become the results [C × (d+16)]
  float* results = q;
#pragma unroll
  for (int block = 0; block < C::kColumnBlocks; ++block) {
    wmma::store_matrix_sync(results + warp * 16 * C::kWide + block * 16, result[block], C::kWide,
                            wmma::mem_row_major);
  }
  __syncwarp();
  for (int i = lane; i < 16 * kD; i += 32) {
    const int t = warp * 16 + i / kD, j = i % kD;
    if (t >= n) continue;
    const float* row = results + t * C::kWide;
    rows.out[((chunk.first_row + t) * shape.num_heads + head) * kD + j] =
        row[j] / (row[kD] + kNormalizerEpsilon);
  }
}

template <int kD>
size_t ChunkStateShared(int degree) {
  using C = Dims<kD>;
  return sizeof(float) * (C::kChunk * kD + C::kChunk * C::kWide + 2 * C::kChunk +
                          C::kChunk * C::kStateTile + C::kStateTile + 4 * 256) +
         sizeof(int) * degree * C::kStateTile;
}

template <int kD>
size_t ChunkOutputShared(int degree) {
  using C = Dims<kD>;
  return sizeof(float) *
             (2 * C::kChunk * kD + C::kChunk * C::kWide + 2 * C::kChunk + C::kQueryTile * C::kWide +
              C::kChunk * C::kQueryTile + C::kChunk * C::kChunk) +
         sizeof(int) * degree * C::kQueryTile;
}

template <int kD>
void Launch(const PowerAttentionShape& shape, const AttentionRows& rows,
            const PrefillSegment* segments, int64_t segment_count, const PrefillChunk* chunks,
            int64_t chunk_count, float* workspace, cudaStream_t stream) {
  using C = Dims<kD>;
  const int64_t state_elements = static_cast<int64_t>(shape.expanded_dim) * (kD + 1);
  float* deltas = workspace;
  float* decays = workspace + chunk_count * shape.num_kv_heads * state_elements;

  const size_t state_shared = ChunkStateShared<kD>(shape.degree);
  cudaFuncSetAttribute(ChunkStateKernel<kD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       static_cast<int>(state_shared));
  const int features_per_block = C::kStateTile * C::kStateTilesPerBlock;
  const dim3 state_grid((shape.expanded_dim + features_per_block - 1) / features_per_block,
                        shape.num_kv_heads, static_cast<unsigned>(chunk_count));
  ChunkStateKernel<kD>
      <<<state_grid, 128, state_shared, stream>>>(shape, rows, chunks, deltas, decays);

  const dim3 scan_grid(GridFor(state_elements), shape.num_kv_heads,
                       static_cast<unsigned>(segment_count));
  ScanKernel<<<scan_grid, kThreads, 0, stream>>>(segments, shape.num_kv_heads, state_elements,
                                                 deltas, decays);

  if (rows.out == nullptr) return;
  const size_t output_shared = ChunkOutputShared<kD>(shape.degree);
  cudaFuncSetAttribute(ChunkOutputKernel<kD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       static_cast<int>(output_shared));
  const dim3 output_grid(shape.num_heads, static_cast<unsigned>(chunk_count));
  ChunkOutputKernel<kD>
      <<<output_grid, C::kChunk * 2, output_shared, stream>>>(shape, rows, chunks, deltas);
}

}  // namespace

std::vector<int32_t> FeatureRows(const std::vector<uint8_t>& monomials, int head_dim, int degree) {
  if (!UsesTensorCorePrefill(head_dim, degree)) return {};
  return TensorCoreFeatureRows(monomials, head_dim);
}

int PrefillChunkTokens(const PowerAttentionShape& shape, bool with_outputs) {
  const int d = shape.head_dim;
  if (UsesTensorCorePrefill(d, shape.degree)) return TensorCorePrefillChunkTokens(d, with_outputs);
  return d <= 32 ? Dims<32>::kChunk : d <= 64 ? Dims<64>::kChunk : Dims<128>::kChunk;
}

std::vector<PrefillChunk> PlanPrefill(const PowerAttentionShape& shape,
                                      std::vector<PrefillSegment>& segments, bool with_outputs) {
  const int chunk = PrefillChunkTokens(shape, with_outputs);
  std::vector<PrefillChunk> chunks;
  for (size_t i = 0; i < segments.size(); ++i) {
    PrefillSegment& segment = segments[i];
    segment.first_chunk = static_cast<int32_t>(chunks.size());
    for (int64_t start = 0; start < segment.num_rows; start += chunk) {
      chunks.push_back({segment.first_row + start,
                        static_cast<int32_t>(std::min<int64_t>(chunk, segment.num_rows - start)),
                        static_cast<int32_t>(i)});
    }
    segment.num_chunks = static_cast<int32_t>(chunks.size()) - segment.first_chunk;
  }
  return chunks;
}

int64_t PrefillWorkspaceFloats(const PowerAttentionShape& shape, int64_t chunks,
                               bool with_outputs) {
  if (UsesTensorCorePrefill(shape.head_dim, shape.degree)) {
    return TensorCorePrefillWorkspaceFloats(shape.head_dim, shape.num_kv_heads, chunks,
                                            with_outputs);
  }
  const int64_t state_elements = static_cast<int64_t>(shape.expanded_dim) * (shape.head_dim + 1);
  return chunks * shape.num_kv_heads * (state_elements + 1);
}

void PowerPrefill(const PowerAttentionShape& shape, const AttentionRows& rows,
                  const PrefillSegment* segments, int64_t segment_count, const PrefillChunk* chunks,
                  int64_t chunk_count, float* workspace, cudaStream_t stream) {
  if (chunk_count == 0) return;
  if (UsesTensorCorePrefill(shape.head_dim, shape.degree)) {
    return TensorCorePrefill(shape, rows, segments, segment_count, chunks, chunk_count, workspace,
                             stream);
  }
  switch (shape.head_dim) {
    case 32:
      return Launch<32>(shape, rows, segments, segment_count, chunks, chunk_count, workspace,
                        stream);
    case 64:
      return Launch<64>(shape, rows, segments, segment_count, chunks, chunk_count, workspace,
                        stream);
    default:
      return Launch<128>(shape, rows, segments, segment_count, chunks, chunk_count, workspace,
                         stream);
  }
}

}  // namespace sympow::kernels
