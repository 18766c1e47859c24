// Decode with deferred state updates: per (session, kv head, tile of features), one read of the
// tile of S and z for the query; partial numerators and denominators meet in a scratch buffer,
// and the tile that finishes last adds the token to the head's decode buffer, attends over the
// buffer and writes the outputs. Buffers that fill are listed and folded by a second launch
// (power_fold.cu), so a state is written once every N tokens instead of every token.
#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/grid.cuh"
#include "kernels/power_attention.h"
#include "kernels/power_common.cuh"
#include "kernels/power_fold.cuh"

namespace sympow::kernels {
namespace {

// State bytes per block, at most: large tiles amortise each block's set-up (q and φ(q) of its
// features, the partial sums' atomics) over more state. Swept on an H200 for the kernel that
// also rewrote the state (bench/results/raw/decode_tile_sweep.log): 128 KB beat 64 KB by 2–5
// points of copy bandwidth and 32 KB by up to 30 on the 14B shape. From those points, a block's
// set-up costs about as much as streaming kSetupBytesPerHead more state for each query head of
// its group.
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

// Shared memory of a block: q, φ(q) of its features, the partial sums, the buffer's decays.
size_t SharedBytes(const PowerAttentionShape& shape, int tile_features) {
  const int group = shape.num_heads / shape.num_kv_heads;
  return sizeof(float) * (2 * group * shape.head_dim + group * tile_features + group +
                          shape.buffer_tokens);
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
      static_cast<int64_t>((kSharedBytes - SharedBytes(shape, 0)) / sizeof(float)) / group;
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
                        static_cast<double>(features * row_bytes + kSetupBytesPerHead * group);
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

// Adds a row's contribution to every query head's numerator.
template <typename Storage, int kGroup>
__device__ inline void ReadRow(const Vector<Storage>& row, const float* phi_q_column, int tile_size,
                               int group, float (&numerator)[kGroup][Vector<Storage>::kSize]) {
  constexpr int kSize = Vector<Storage>::kSize;
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    if (g < group) {
      const float w = phi_q_column[g * tile_size];
#pragma unroll
      for (int j = 0; j < kSize; ++j) numerator[g][j] += w * row.x[j];
    }
  }
}

// Where the scratch's parts sit (DecodeScratchFloats): numerators [rows × H × d], denominators
// [rows × H], arrivals [rows × kv heads], then the fold list's length and its items.
struct DecodeScratch {
  float* numerators;
  float* denominators;
  unsigned* arrivals;
  int* fold_count;
  FoldItem* fold_items;

  __host__ __device__ DecodeScratch(float* scratch, const PowerAttentionShape& shape,
                                    int64_t count) {
    const int64_t heads = count * shape.num_heads;
    numerators = scratch;
    denominators = scratch + heads * shape.head_dim;
    arrivals = reinterpret_cast<unsigned*>(denominators + heads);
    const int64_t list = (heads * (shape.head_dim + 1) + count * shape.num_kv_heads + 3) / 4 * 4;
    fold_count = reinterpret_cast<int*>(scratch + list);
    fold_items = reinterpret_cast<FoldItem*>(scratch + list + 4);
  }
};

// Run by the last block of a (row, kv head) to arrive, once every tile's partial sums are in
// scratch: appends the token (k, v, log g) to the head's buffer, then warp g writes query head g
// of the group, out = (e^A·s^p·num + Σ_s w_s v_s) / (e^A·s^p·den + Σ_s w_s + ε) over the buffered
// tokens s (this one included), w_s = (s·q·k_s)^p·e^{A_s}, A_s the log gates after s and A all of
// the buffer's. A buffer that is full is emptied and listed for the fold.
__device__ inline void FinishHeads(const PowerAttentionShape& shape, const AttentionRows& rows,
                                   const DecodeRow& decode, const DecodeScratch& scratch,
                                   LayerOffsets layer, const float* q, float* decay) {
  const int d = shape.head_dim;
  const int N = shape.buffer_tokens;
  const int h = blockIdx.y;
  const int group = shape.num_heads / shape.num_kv_heads;
  float* buffer = reinterpret_cast<float*>(static_cast<char*>(decode.state) + layer.buffer) +
                  h * BufferFloatsPerHead(shape);
  float* log_gates = buffer + kBufferHeaderFloats;
  float* keys = log_gates + N;
  float* values = keys + N * d;
  const int n = static_cast<int>(__ldcg(buffer)) + 1;
  const int64_t kv_row = decode.row * shape.num_kv_heads + h;
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    keys[(n - 1) * d + j] = rows.k[kv_row * d + j];
    values[(n - 1) * d + j] = rows.v[kv_row * d + j];
  }
  __shared__ float state_decay;
  if (threadIdx.x == 0) {
    log_gates[n - 1] = rows.log_gate ? rows.log_gate[kv_row] : 0.0f;
    float later = 0.0f;
    for (int s = n - 1; s >= 0; --s) {
      decay[s] = expf(later);
      later += log_gates[s];
    }
    state_decay = expf(later);
    buffer[0] = n == N ? 0.0f : static_cast<float>(n);
    if (n == N) {
      scratch.fold_items[atomicAdd(scratch.fold_count, 1)] = {decode.state, h, n};
    }
  }
  __syncthreads();
  const int g = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (g >= group) return;
  constexpr int kMaxPerLane = 4;  // head_dim ≤ 128
  float numerator[kMaxPerLane] = {};
  float denominator = 0.0f;
  for (int s = 0; s < n; ++s) {
    float dot = 0.0f;
    for (int j = lane; j < d; j += 32) dot += q[g * d + j] * keys[s * d + j];
    const float w = EvenPower(shape.scale * WarpSum(dot), shape.degree) * decay[s];
    denominator += w;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      if (lane + 32 * i < d) numerator[i] += w * values[s * d + lane + 32 * i];
    }
  }
  const int query_head = h * group + g;
  const int64_t partial = blockIdx.z * shape.num_heads + query_head;  // its sums in scratch
  const float carried = state_decay * shape.scale_pow;
  const float inverse = 1.0f / (carried * __ldcg(&scratch.denominators[partial]) + denominator +
                                kNormalizerEpsilon);
  const float* numerators = scratch.numerators + partial * d;
  float* out = rows.out + (decode.row * shape.num_heads + query_head) * d;
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int j = lane + 32 * i;
    if (j < d) out[j] = (carried * __ldcg(&numerators[j]) + numerator[i]) * inverse;
  }
}

// grid (feature tiles, kv heads, rows). Each block reads its tile of S and z once, adds its
// partial numerators and denominators into scratch (zeroed by the caller), and the last tile of a
// (row, kv head) to finish completes the outputs (FinishHeads). kGroup bounds the query heads per
// kv head (registers); small groups leave registers for four blocks an SM.
template <typename Storage, int kGroup>
__global__ void __launch_bounds__(kThreads, BlocksPerSM(kGroup))
    DecodeKernel(PowerAttentionShape shape, AttentionRows rows, const DecodeRow* decode_rows,
                 int64_t count, LayerOffsets layer, int tile_size, float* scratch_floats) {
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
  float* phi_q = q + group * d;              // [group × tile_size]
  float* sum = phi_q + group * tile_size;    // [group × d] numerators, then [group] denominators
  float* decay = sum + group * (d + 1);      // [N], for FinishHeads
  __shared__ bool last_to_arrive;

  // The first batch of rows is fetched before φ is made, so the two latencies overlap.
  const Storage* S =
      reinterpret_cast<const Storage*>(static_cast<const char*>(decode.state) + layer.state) +
      static_cast<int64_t>(h) * D * (d + 1);
  const Storage* z = S + static_cast<int64_t>(D) * d;
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
  if (threadIdx.x < group) sum[group * d + threadIdx.x] = 0.0f;
  __syncthreads();
  for (int f = threadIdx.x; f < tile; f += blockDim.x) {
    const uint8_t* factors = shape.monomials + (first_feature + f) * shape.degree;
    for (int g = 0; g < group; ++g) {
      phi_q[g * tile_size + f] = Monomial(q + g * d, factors, shape.degree);
    }
  }
  __syncthreads();

  float numerator[kGroup][kSize] = {};
  auto read = [&](const uint4(&batch)[kBatch], int base) {
#pragma unroll
    for (int r = 0; r < kBatch; ++r) {
      const int row = base + first_row + r * row_groups;
      if (row < tile) {
        ReadRow<Storage, kGroup>(Widen<Storage>(batch[r]), phi_q + row, tile_size, group,
                                 numerator);
      }
    }
  };
  for (int base = 0; base < tile; base += 2 * batch_rows) {
    if (base + batch_rows < tile) fetch(odd, base + batch_rows);
    read(even, base);
    if (base + 2 * batch_rows < tile) fetch(even, base + 2 * batch_rows);
    read(odd, base + batch_rows);
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
    const float old = LoadOne(z + first_feature + f);
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      if (g < group) denominator[g] += phi_q[g * tile_size + f] * old;
    }
  }
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    if (g < group) {
      const float total = WarpSum(denominator[g]);
      if (threadIdx.x % 32 == 0) atomicAdd(&sum[group * d + g], total);
    }
  }
  __syncthreads();
  const DecodeScratch scratch(scratch_floats, shape, count);
  float* numerators = scratch.numerators + (blockIdx.z * shape.num_heads + h * group) * d;
  float* denominators = scratch.denominators + blockIdx.z * shape.num_heads + h * group;
  unsigned* arrivals = scratch.arrivals + blockIdx.z * shape.num_kv_heads + h;
  for (int i = threadIdx.x; i < group * d; i += blockDim.x) atomicAdd(&numerators[i], sum[i]);
  if (threadIdx.x < group) atomicAdd(&denominators[threadIdx.x], sum[group * d + threadIdx.x]);
  // The classic last-block pattern: each block's sums are visible before its arrival counts.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last_to_arrive = atomicAdd(arrivals, 1u) == gridDim.x - 1;
  __syncthreads();
  if (!last_to_arrive) return;
  __threadfence();
  FinishHeads(shape, rows, decode, scratch, layer, q, decay);
}

template <typename Storage>
void LaunchDecodeState(int group, dim3 grid, size_t shared, cudaStream_t stream,
                       const PowerAttentionShape& shape, const AttentionRows& rows,
                       const DecodeRow* decode_rows, int64_t count, LayerOffsets layer, int tile,
                       float* scratch) {
  switch (KernelGroup(group)) {
    case 1:
      return DecodeKernel<Storage, 1>
          <<<grid, kThreads, shared, stream>>>(shape, rows, decode_rows, count, layer, tile, scratch);
    case 2:
      return DecodeKernel<Storage, 2>
          <<<grid, kThreads, shared, stream>>>(shape, rows, decode_rows, count, layer, tile, scratch);
    case 4:
      return DecodeKernel<Storage, 4>
          <<<grid, kThreads, shared, stream>>>(shape, rows, decode_rows, count, layer, tile, scratch);
    case 5:
      return DecodeKernel<Storage, 5>
          <<<grid, kThreads, shared, stream>>>(shape, rows, decode_rows, count, layer, tile, scratch);
    default:
      return DecodeKernel<Storage, kMaxGroup>
          <<<grid, kThreads, shared, stream>>>(shape, rows, decode_rows, count, layer, tile, scratch);
  }
}

}  // namespace

int64_t DecodeScratchFloats(const PowerAttentionShape& shape, int64_t count) {
  const int64_t sums = count * (shape.num_heads * (shape.head_dim + 1) + shape.num_kv_heads);
  const int64_t fold_items = count * shape.num_kv_heads;
  return (sums + 3) / 4 * 4 + 4 + fold_items * static_cast<int64_t>(sizeof(FoldItem) / 4);
}

void PowerDecode(const PowerAttentionShape& shape, const AttentionRows& rows,
                 const DecodeRow* decode_rows, int64_t count, LayerOffsets layer,
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
                                     layer, tile, scratch);
  } else {
    LaunchDecodeState<float>(group, grid, shared, stream, shape, rows, decode_rows, count, layer,
                             tile, scratch);
  }
  const DecodeScratch parts(scratch, shape, count);
  LaunchFold(shape, parts.fold_items, parts.fold_count, count * shape.num_kv_heads, layer,
             bf16_state, stream);
}

}  // namespace sympow::kernels
