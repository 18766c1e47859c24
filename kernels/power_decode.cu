// Fused decode: per (session, kv head, tile of features), one pass over the tile of S and z that
// reads the old state for the query and writes the gated, updated state; partial numerators and
// denominators meet in a scratch buffer, and the tile that finishes last adds the token's own term
// and writes the outputs. One launch per layer.
#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/grid.cuh"
#include "kernels/power_attention.h"
#include "kernels/power_common.cuh"

namespace sympow::kernels {
namespace {

// State bytes per block, at most: large tiles amortise each block's set-up (q, k, v and φ of its
// features, the partial sums' atomics) over more state. Swept on an H200 (bench/results/raw/
// decode_tile_sweep.log): 128 KB beat 64 KB by 2–5 points of copy bandwidth and 32 KB by up to 30
// on the 14B shape. From those points, a block's set-up costs about as much as streaming
// kSetupBytesPerHead more state for the key and for each query head of its group (8 KB for the
// 124M shape's group of one, 24 KB for the 14B shape's five).
constexpr int64_t kTileBytes = 128 * 1024;
constexpr int64_t kSetupBytesPerHead = 4 * 1024;
constexpr int kMinTileFeatures = 64;

// The DecodeKernel instance for `group` query heads per kv head: its numerators live in
// registers, sized exactly for the common groups.
constexpr int KernelGroup(int group) {
  return group == 1 || group == 2 || group == 4 || group == 5 ? group : kMaxGroup;
}
// Blocks of DecodeKernel<·, kGroup> an SM holds (its launch bounds): fewer as the group grows.
constexpr int BlocksPerSM(int kernel_group) {
  return kernel_group <= 2 ? 4 : (kernel_group <= 5 ? 3 : 2);
}

int MultiprocessorCount() {
  static const int count = [] {
    int device = 0, sms = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    return sms;
  }();
  return count;
}

// Shared memory of a block: q, k, v, φ(q) and φ(k) of its features, the partial sums.
size_t SharedBytes(const PowerAttentionShape& shape, int tile_features) {
  const int group = shape.num_heads / shape.num_kv_heads;
  return sizeof(float) * ((2 * group + 2) * shape.head_dim + (group + 1) * tile_features + group);
}

// Features per block: equal tiles, a multiple of 8 features, whose φ fits the 48 KB of shared
// memory a launch gets without opting in (less a margin for the kernel's static shared memory).
// Blocks run in waves of (SMs × blocks per SM): the tile count is the one with the least
// estimated time, ceil(blocks / wave) × (tile bytes + set-up), so that a batch of few sessions
// is cut finer and no last wave runs mostly empty. Against the previous kernel (fixed 128 KB
// tiles, at least 8 blocks an SM, one register batch copied forward; bench/results/raw/
// decode_previous_kernel_bfbe66b.log, same GPU call): one 14B session 33 → 48% of copy
// bandwidth, the rest within 3 points.
int TileFeatures(const PowerAttentionShape& shape, int64_t count, bool bf16_state) {
  constexpr size_t kSharedBytes = 47 * 1024;
  const int group = shape.num_heads / shape.num_kv_heads;
  const int64_t D = shape.expanded_dim;
  const int64_t row_bytes = shape.head_dim * (bf16_state ? 2 : 4);
  const int64_t most_features =
      static_cast<int64_t>((kSharedBytes - SharedBytes(shape, 0)) / sizeof(float)) / (group + 1);
  const int64_t tile_bytes = std::min(kTileBytes, most_features / 8 * 8 * row_bytes);
  const int64_t fewest_tiles = (D * row_bytes + tile_bytes - 1) / tile_bytes;
  const int64_t pairs = count * shape.num_kv_heads;
  const int64_t wave = int64_t{MultiprocessorCount()} * BlocksPerSM(KernelGroup(group));
  // Beyond two waves' worth of extra tiles, finer cuts only add set-up.
  const int64_t most_tiles =
      std::max(fewest_tiles, std::min(D / kMinTileFeatures, fewest_tiles + 2 * wave / pairs));
  int64_t best_features = 0;
  double best_time = 0.0;
  for (int64_t tiles = fewest_tiles; tiles <= most_tiles; ++tiles) {
    const int64_t features = ((D + tiles - 1) / tiles + 7) / 8 * 8;
    const int64_t blocks = pairs * ((D + features - 1) / features);
    const double time = static_cast<double>((blocks + wave - 1) / wave) *
                        static_cast<double>(features * row_bytes + kSetupBytesPerHead * (group + 1));
    if (best_features == 0 || time < best_time) {
      best_features = features;
      best_time = time;
    }
  }
  return static_cast<int>(best_features);
}

// kVector consecutive state elements, 16 bytes of storage, widened to fp32.
template <typename Storage>
struct Vector {
  static constexpr int kSize = 16 / sizeof(Storage);
  float x[kSize];
};

__device__ inline void Store(float* p, const Vector<float>& v) {
  __stcs(reinterpret_cast<float4*>(p), make_float4(v.x[0], v.x[1], v.x[2], v.x[3]));
}
__device__ inline void Store(__nv_bfloat16* p, const Vector<__nv_bfloat16>& v) {
  uint32_t words[4];
  for (int i = 0; i < 4; ++i) {
    const __nv_bfloat162 pair = __floats2bfloat162_rn(v.x[2 * i], v.x[2 * i + 1]);
    words[i] = *reinterpret_cast<const uint32_t*>(&pair);
  }
  __stcs(reinterpret_cast<uint4*>(p), make_uint4(words[0], words[1], words[2], words[3]));
}
__device__ inline float LoadOne(const float* p) { return *p; }
__device__ inline float LoadOne(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ inline void StoreOne(float* p, float v) { *p = v; }
__device__ inline void StoreOne(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Rows of the state a thread loads per batch (16 bytes each), while the other batch is in flight:
// 48–64 bytes of loads outstanding per thread, less where many query heads share a kv head, or
// a bf16 row's eight columns, take the registers for their numerators (ptxas: no spills).
template <typename Storage, int kGroup>
constexpr int kRowsPerBatch = kGroup > 2 ? 2 : (sizeof(Storage) == 2 ? 3 : 4);

// 16 bytes of state as stored, kept raw until used (4 registers whatever the storage type).
__device__ inline uint4 LoadRaw(const void* p) { return __ldcs(static_cast<const uint4*>(p)); }
template <typename Storage>
__device__ inline Vector<Storage> Widen(uint4 raw);
template <>
__device__ inline Vector<float> Widen<float>(uint4 raw) {
  return {{__uint_as_float(raw.x), __uint_as_float(raw.y), __uint_as_float(raw.z),
           __uint_as_float(raw.w)}};
}
template <>
__device__ inline Vector<__nv_bfloat16> Widen<__nv_bfloat16>(uint4 raw) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
  Vector<__nv_bfloat16> v;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 pair = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&words[i]));
    v.x[2 * i] = pair.x;
    v.x[2 * i + 1] = pair.y;
  }
  return v;
}

// Adds a row's contribution to every query head's numerator, then gates and advances the row.
template <typename Storage, int kGroup>
__device__ inline void AdvanceRow(Storage* s, Vector<Storage> row, const float* phi_q_column,
                                  int tile_size, float phi_k, float gate,
                                  const Vector<Storage>& value, int group,
                                  float (&numerator)[kGroup][Vector<Storage>::kSize]) {
  constexpr int kSize = Vector<Storage>::kSize;
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    if (g < group) {
      const float w = phi_q_column[g * tile_size];
#pragma unroll
      for (int j = 0; j < kSize; ++j) numerator[g][j] += w * row.x[j];
    }
  }
#pragma unroll
  for (int j = 0; j < kSize; ++j) row.x[j] = gate * row.x[j] + phi_k * value.x[j];
  Store(s, row);
}

// Run by the last block of a (row, kv head) to arrive, once every tile's partial sums are in
// scratch: warp g writes query head g of the group, out = (g·s^p·num + w·v) / (g·s^p·den + w + ε)
// with w = (s·q·k)^p, the token's own term.
__device__ inline void FinishHeads(const PowerAttentionShape& shape, const float* q,
                                   const float* k, const float* v, float gate, int group,
                                   const float* numerators, const float* denominators,
                                   float* out) {
  const int d = shape.head_dim;
  const int g = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (g >= group) return;
  float dot = 0.0f;
  for (int j = lane; j < d; j += 32) dot += q[g * d + j] * k[j];
  const float self_weight = EvenPower(shape.scale * WarpSum(dot), shape.degree);
  const float carried = gate * shape.scale_pow;
  const float inverse =
      1.0f / (carried * __ldcg(&denominators[g]) + self_weight + kNormalizerEpsilon);
  for (int j = lane; j < d; j += 32) {
    out[g * d + j] = (carried * __ldcg(&numerators[g * d + j]) + self_weight * v[j]) * inverse;
  }
}

// grid (feature tiles, kv heads, rows). Each block reads and rewrites its tile of S and z once,
// adds its partial numerators and denominators into scratch (DecodeScratchFloats: numerators
// [rows × H × d], denominators [rows × H], arrivals [rows × kv heads], zeroed by the caller), and
// the last tile of a (row, kv head) to finish writes the outputs. kGroup bounds the query heads
// per kv head (registers); small groups leave registers for four blocks an SM.
template <typename Storage, int kGroup>
__global__ void __launch_bounds__(kThreads, BlocksPerSM(kGroup))
    DecodeKernel(PowerAttentionShape shape, AttentionRows rows, const DecodeRow* decode_rows,
                 int64_t count, int64_t state_offset, int tile_size, float* scratch) {
  constexpr int kSize = Vector<Storage>::kSize;
  extern __shared__ float shared[];
  const int d = shape.head_dim;
  const int D = shape.expanded_dim;
  const int group = shape.num_heads / shape.num_kv_heads;
  const int h = blockIdx.y;
  const DecodeRow decode = decode_rows[blockIdx.z];
  const int first_feature = blockIdx.x * tile_size;
  const int tile = min(tile_size, D - first_feature);

  float* q = shared;                         // [group × d]
  float* k = q + group * d;                  // [d]
  float* v = k + d;                          // [d]
  float* phi_q = v + d;                      // [group × tile_size]
  float* phi_k = phi_q + group * tile_size;  // [tile_size]
  float* sum = phi_k + tile_size;            // [group × d] numerators, then [group] denominators
  __shared__ bool last_to_arrive;

  // The first batch of rows is fetched before φ is made, so the two latencies overlap.
  Storage* S = reinterpret_cast<Storage*>(static_cast<char*>(decode.state) + state_offset) +
               static_cast<int64_t>(h) * D * (d + 1);
  Storage* z = S + static_cast<int64_t>(D) * d;
  const int lanes = d / kSize;
  const int col = (threadIdx.x % lanes) * kSize;
  const int row_groups = blockDim.x / lanes;
  const int first_row = threadIdx.x / lanes;
  constexpr int kBatch = kRowsPerBatch<Storage, kGroup>;
  const int batch_rows = kBatch * row_groups;
  // Two batches of registers used in turn: each is refilled right after it is used, while the
  // other is worked on. (A `current = next` copy would instead wait for the loads in flight.)
  uint4 even[kBatch], odd[kBatch];
  auto fetch = [&](uint4(&into)[kBatch], int base) {
#pragma unroll
    for (int r = 0; r < kBatch; ++r) {
      const int row = base + first_row + r * row_groups;
      if (row < tile) into[r] = LoadRaw(S + static_cast<int64_t>(first_feature + row) * d + col);
    }
  };
  fetch(even, 0);

  const float* q_row = rows.q + decode.row * shape.num_heads * d + h * group * d;
  for (int i = threadIdx.x; i < group * d; i += blockDim.x) {
    q[i] = q_row[i];
    sum[i] = 0.0f;
  }
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    k[i] = rows.k[(decode.row * shape.num_kv_heads + h) * d + i];
    v[i] = rows.v[(decode.row * shape.num_kv_heads + h) * d + i];
  }
  if (threadIdx.x < group) sum[group * d + threadIdx.x] = 0.0f;
  const float gate =
      rows.log_gate ? expf(rows.log_gate[decode.row * shape.num_kv_heads + h]) : 1.0f;
  __syncthreads();
  for (int f = threadIdx.x; f < tile; f += blockDim.x) {
    const uint8_t* factors = shape.monomials + (first_feature + f) * shape.degree;
    phi_k[f] = shape.key_weights[first_feature + f] * Monomial(k, factors, shape.degree);
    for (int g = 0; g < group; ++g) {
      phi_q[g * tile_size + f] = Monomial(q + g * d, factors, shape.degree);
    }
  }
  __syncthreads();

  float numerator[kGroup][kSize] = {};
  Vector<Storage> value;
  for (int j = 0; j < kSize; ++j) value.x[j] = v[col + j];
  auto advance = [&](const uint4(&batch)[kBatch], int base) {
#pragma unroll
    for (int r = 0; r < kBatch; ++r) {
      const int row = base + first_row + r * row_groups;
      if (row < tile) {
        AdvanceRow<Storage, kGroup>(S + static_cast<int64_t>(first_feature + row) * d + col,
                                    Widen<Storage>(batch[r]), phi_q + row, tile_size, phi_k[row],
                                    gate, value, group, numerator);
      }
    }
  };
  for (int base = 0; base < tile; base += 2 * batch_rows) {
    if (base + batch_rows < tile) fetch(odd, base + batch_rows);
    advance(even, base);
    if (base + 2 * batch_rows < tile) fetch(even, base + 2 * batch_rows);
    advance(odd, base + batch_rows);
  }
  // Lanes of a warp that share columns add up first: fewer shared-memory atomics.
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    if (g < group) {
      for (int j = 0; j < kSize; ++j) {
        float partial = numerator[g][j];
        for (int offset = lanes; offset < 32; offset *= 2)
          partial += __shfl_xor_sync(0xffffffffu, partial, offset);
        if (threadIdx.x % 32 < lanes) atomicAdd(&sum[g * d + col + j], partial);
      }
    }
  }
  float denominator[kGroup] = {};
  for (int f = threadIdx.x; f < tile; f += blockDim.x) {
    Storage* zf = z + first_feature + f;
    const float old = LoadOne(zf);
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      if (g < group) denominator[g] += phi_q[g * tile_size + f] * old;
    }
    StoreOne(zf, gate * old + phi_k[f]);
  }
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    if (g < group) {
      const float total = WarpSum(denominator[g]);
      if (threadIdx.x % 32 == 0) atomicAdd(&sum[group * d + g], total);
    }
  }
  __syncthreads();
  const int64_t heads = count * shape.num_heads;
  float* numerators = scratch + (blockIdx.z * shape.num_heads + h * group) * d;
  float* denominators = scratch + heads * d + blockIdx.z * shape.num_heads + h * group;
  auto* arrivals = reinterpret_cast<unsigned*>(scratch + heads * (d + 1)) +
                   blockIdx.z * shape.num_kv_heads + h;
  for (int i = threadIdx.x; i < group * d; i += blockDim.x) atomicAdd(&numerators[i], sum[i]);
  if (threadIdx.x < group) atomicAdd(&denominators[threadIdx.x], sum[group * d + threadIdx.x]);
  // The classic last-block pattern: each block's sums are visible before its arrival counts.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last_to_arrive = atomicAdd(arrivals, 1u) == gridDim.x - 1;
  __syncthreads();
  if (!last_to_arrive) return;
  __threadfence();
  FinishHeads(shape, q, k, v, gate, group, numerators, denominators,
              rows.out + (decode.row * shape.num_heads + h * group) * d);
}

template <typename Storage>
void LaunchDecodeState(int group, dim3 grid, size_t shared, cudaStream_t stream,
                       const PowerAttentionShape& shape, const AttentionRows& rows,
                       const DecodeRow* decode_rows, int64_t count, int64_t state_offset,
                       int tile, float* scratch) {
  switch (KernelGroup(group)) {
    case 1:
      return DecodeKernel<Storage, 1><<<grid, kThreads, shared, stream>>>(
          shape, rows, decode_rows, count, state_offset, tile, scratch);
    case 2:
      return DecodeKernel<Storage, 2><<<grid, kThreads, shared, stream>>>(
          shape, rows, decode_rows, count, state_offset, tile, scratch);
    case 4:
      return DecodeKernel<Storage, 4><<<grid, kThreads, shared, stream>>>(
          shape, rows, decode_rows, count, state_offset, tile, scratch);
    case 5:
      return DecodeKernel<Storage, 5><<<grid, kThreads, shared, stream>>>(
          shape, rows, decode_rows, count, state_offset, tile, scratch);
    default:
      return DecodeKernel<Storage, kMaxGroup><<<grid, kThreads, shared, stream>>>(
          shape, rows, decode_rows, count, state_offset, tile, scratch);
  }
}

}  // namespace

int64_t DecodeScratchFloats(const PowerAttentionShape& shape, int64_t count) {
  return count * (shape.num_heads * (shape.head_dim + 1) + shape.num_kv_heads);
}

void PowerDecode(const PowerAttentionShape& shape, const AttentionRows& rows,
                 const DecodeRow* decode_rows, int64_t count, int64_t state_offset,
                 bool bf16_state, float* scratch, cudaStream_t stream) {
  if (count == 0) return;
  const int group = shape.num_heads / shape.num_kv_heads;
  cudaMemsetAsync(scratch, 0, DecodeScratchFloats(shape, count) * sizeof(float), stream);
  const int tile = TileFeatures(shape, count, bf16_state);
  const dim3 grid((shape.expanded_dim + tile - 1) / tile, shape.num_kv_heads,
                  static_cast<unsigned>(count));
  const size_t shared = SharedBytes(shape, tile);
  if (bf16_state) {
    LaunchDecodeState<__nv_bfloat16>(group, grid, shared, stream, shape, rows, decode_rows, count,
                                     state_offset, tile, scratch);
  } else {
    LaunchDecodeState<float>(group, grid, shared, stream, shape, rows, decode_rows, count,
                             state_offset, tile, scratch);
  }
}

}  // namespace sympow::kernels
