// Fused decode: per (session, kv head, tile of features), one pass over the tile of S and z that
// reads the old state for the query and writes the gated, updated state; partial numerators and
// denominators meet in a scratch buffer, and a second kernel adds the token's own term.
#include <cuda_bf16.h>

#include "kernels/grid.cuh"
#include "kernels/power_attention.h"
#include "kernels/power_common.cuh"

namespace sympow::kernels {
namespace {

// State bytes per block: large tiles amortise each block's set-up (q, k, v and φ of its features)
// over more state; small ones give a handful of sessions enough blocks to fill the GPU.
constexpr int kLargeTileBytes = 512 * 64 * 4;
constexpr int kSmallTile = 64;

// kVector consecutive state elements, 16 bytes of storage, widened to fp32.
template <typename Storage>
struct Vector {
  static constexpr int kSize = 16 / sizeof(Storage);
  float x[kSize];
};

__device__ inline Vector<float> Load(const float* p) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  return {{v.x, v.y, v.z, v.w}};
}
__device__ inline void Store(float* p, const Vector<float>& v) {
  *reinterpret_cast<float4*>(p) = make_float4(v.x[0], v.x[1], v.x[2], v.x[3]);
}
__device__ inline Vector<__nv_bfloat16> Load(const __nv_bfloat16* p) {
  const uint4 bits = *reinterpret_cast<const uint4*>(p);
  const uint32_t words[4] = {bits.x, bits.y, bits.z, bits.w};
  Vector<__nv_bfloat16> v;
  for (int i = 0; i < 4; ++i) {
    const float2 pair = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&words[i]));
    v.x[2 * i] = pair.x;
    v.x[2 * i + 1] = pair.y;
  }
  return v;
}
__device__ inline void Store(__nv_bfloat16* p, const Vector<__nv_bfloat16>& v) {
  uint32_t words[4];
  for (int i = 0; i < 4; ++i) {
    const __nv_bfloat162 pair = __floats2bfloat162_rn(v.x[2 * i], v.x[2 * i + 1]);
    words[i] = *reinterpret_cast<const uint32_t*>(&pair);
  }
  *reinterpret_cast<uint4*>(p) = make_uint4(words[0], words[1], words[2], words[3]);
}
__device__ inline float LoadOne(const float* p) { return *p; }
__device__ inline float LoadOne(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ inline void StoreOne(float* p, float v) { *p = v; }
__device__ inline void StoreOne(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Rows of the state each thread keeps in flight: 32 bytes of loads per thread before any is used.
template <typename Storage>
constexpr int kRowsInFlight = 8 / sizeof(Storage);

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

// grid (feature tiles, kv heads, rows); scratch: numerators [rows × H × d], then denominators
// [rows × H], zeroed by the caller. kGroup bounds the query heads per kv head (registers).
template <typename Storage, int kGroup>
__global__ void __launch_bounds__(kThreads)
    DecodeStateKernel(PowerAttentionShape shape, AttentionRows rows, const DecodeRow* decode_rows,
                      int64_t count, int tile_size, float* scratch) {
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

  // The first rows of the tile are fetched before φ is made, so the two latencies overlap.
  Storage* S = static_cast<Storage*>(decode.state) + static_cast<int64_t>(h) * D * (d + 1);
  Storage* z = S + static_cast<int64_t>(D) * d;
  const int lanes = d / kSize;
  const int col = (threadIdx.x % lanes) * kSize;
  const int row_groups = blockDim.x / lanes;
  constexpr int kInFlight = kRowsInFlight<Storage>;
  Vector<Storage> held[kInFlight];
  auto fetch = [&](int f) {
#pragma unroll
    for (int r = 0; r < kInFlight; ++r) {
      const int row = f + r * row_groups;
      if (row < tile) held[r] = Load(S + static_cast<int64_t>(first_feature + row) * d + col);
    }
  };
  fetch(threadIdx.x / lanes);
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
  for (int f = threadIdx.x / lanes; f < tile; f += kInFlight * row_groups) {
    if (f != threadIdx.x / lanes) fetch(f);
#pragma unroll
    for (int r = 0; r < kInFlight; ++r) {
      const int row = f + r * row_groups;
      if (row < tile) {
        AdvanceRow<Storage, kGroup>(S + static_cast<int64_t>(first_feature + row) * d + col,
                                    held[r], phi_q + row, tile_size, phi_k[row], gate, value, group,
                                    numerator);
      }
    }
  }
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    if (g < group) {
      for (int j = 0; j < kSize; ++j) atomicAdd(&sum[g * d + col + j], numerator[g][j]);
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
  float* numerators = scratch + (blockIdx.z * shape.num_heads + h * group) * d;
  float* denominators =
      scratch + count * shape.num_heads * d + blockIdx.z * shape.num_heads + h * group;
  for (int i = threadIdx.x; i < group * d; i += blockDim.x) atomicAdd(&numerators[i], sum[i]);
  if (threadIdx.x < group) atomicAdd(&denominators[threadIdx.x], sum[group * d + threadIdx.x]);
}

// One warp per (row, query head): out = (g·s^p·num + w·v) / (g·s^p·den + w + ε), w = (s·q·k)^p.
__global__ void DecodeFinishKernel(PowerAttentionShape shape, AttentionRows rows,
                                   const DecodeRow* decode_rows, int64_t count,
                                   const float* scratch) {
  const int lane = threadIdx.x % 32;
  for (int64_t task = GlobalThread() / 32; task < count * shape.num_heads;
       task += GridThreads() / 32) {
    const int64_t i = task / shape.num_heads;
    const int head = task % shape.num_heads;
    const int d = shape.head_dim;
    const int kv_head = head / (shape.num_heads / shape.num_kv_heads);
    const int64_t row = decode_rows[i].row;
    const float* q = rows.q + (row * shape.num_heads + head) * d;
    const float* k = rows.k + (row * shape.num_kv_heads + kv_head) * d;
    const float* v = rows.v + (row * shape.num_kv_heads + kv_head) * d;
    float dot = 0.0f;
    for (int j = lane; j < d; j += 32) dot += q[j] * k[j];
    dot = WarpSum(dot);
    const float self_weight = EvenPower(shape.scale * dot, shape.degree);
    const float gate =
        rows.log_gate ? expf(rows.log_gate[row * shape.num_kv_heads + kv_head]) : 1.0f;
    const float carried = gate * shape.scale_pow;
    const float* numerator = scratch + task * d;
    const float denominator = scratch[count * shape.num_heads * d + task];
    const float inverse = 1.0f / (carried * denominator + self_weight + kNormalizerEpsilon);
    float* out = rows.out + (row * shape.num_heads + head) * d;
    for (int j = lane; j < d; j += 32)
      out[j] = (carried * numerator[j] + self_weight * v[j]) * inverse;
  }
}

template <typename Storage>
void LaunchDecodeState(int group, dim3 grid, size_t shared, cudaStream_t stream,
                       const PowerAttentionShape& shape, const AttentionRows& rows,
                       const DecodeRow* decode_rows, int64_t count, int tile, float* scratch) {
  // The numerator registers are sized by the group: exact for the common ones.
  switch (group) {
    case 1:
      return DecodeStateKernel<Storage, 1>
          <<<grid, kThreads, shared, stream>>>(shape, rows, decode_rows, count, tile, scratch);
    case 2:
      return DecodeStateKernel<Storage, 2>
          <<<grid, kThreads, shared, stream>>>(shape, rows, decode_rows, count, tile, scratch);
    case 4:
      return DecodeStateKernel<Storage, 4>
          <<<grid, kThreads, shared, stream>>>(shape, rows, decode_rows, count, tile, scratch);
    case 5:
      return DecodeStateKernel<Storage, 5>
          <<<grid, kThreads, shared, stream>>>(shape, rows, decode_rows, count, tile, scratch);
    default:
      return DecodeStateKernel<Storage, kMaxGroup>
          <<<grid, kThreads, shared, stream>>>(shape, rows, decode_rows, count, tile, scratch);
  }
}

}  // namespace

void PowerDecode(const PowerAttentionShape& shape, const AttentionRows& rows,
                 const DecodeRow* decode_rows, int64_t count, bool bf16_state, float* scratch,
                 cudaStream_t stream) {
  if (count == 0) return;
  const int group = shape.num_heads / shape.num_kv_heads;
  cudaMemsetAsync(scratch, 0, count * shape.num_heads * (shape.head_dim + 1) * sizeof(float),
                  stream);
  // Large tiles of equal size (a multiple of 8 features) when they still make enough blocks.
  const int large_tile = kLargeTileBytes / (shape.head_dim * (bf16_state ? 2 : 4));
  const int64_t tiles = (shape.expanded_dim + large_tile - 1) / large_tile;
  const int balanced = static_cast<int>((shape.expanded_dim + tiles - 1) / tiles + 7) / 8 * 8;
  const int tile = tiles * shape.num_kv_heads * count >= 512 ? balanced : kSmallTile;
  const dim3 grid((shape.expanded_dim + tile - 1) / tile, shape.num_kv_heads,
                  static_cast<unsigned>(count));
  const size_t shared = sizeof(float) * ((group + 2) * shape.head_dim + (group + 1) * tile +
                                         group * shape.head_dim + group);
  if (bf16_state) {
    LaunchDecodeState<__nv_bfloat16>(group, grid, shared, stream, shape, rows, decode_rows, count,
                                     tile, scratch);
  } else {
    LaunchDecodeState<float>(group, grid, shared, stream, shape, rows, decode_rows, count, tile,
                             scratch);
  }
  DecodeFinishKernel<<<GridFor(count * shape.num_heads * 32), kThreads, 0, stream>>>(
      shape, rows, decode_rows, count, scratch);
}

}  // namespace sympow::kernels
