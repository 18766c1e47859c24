// Decode with deferred state updates: per (session, kv head, tile of features), one read of the
// tile of S and z for the query; partial numerators and denominators meet in a scratch buffer,
// and the tile that finishes last adds the token to the head's decode buffer, attends over the
// buffer and writes the outputs. The engine folds buffers that fill (through the prefill, see
// GatherDecodeBuffers), so a state is written once every N tokens instead of every token.
#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/grid.cuh"
#include "kernels/power_attention.h"
#include "kernels/power_common.cuh"

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

// The tile streams through shared memory in kStages stages of kStageRows rows (16 bytes each) per
// thread, copied asynchronously (cp.async): kStages − 1 stages are always in flight, whatever
// order the compiler gives the arithmetic. Each thread reads back only what it copied, so no
// barrier is needed between copy and use.
constexpr int kStages = 4;
constexpr int kStageRows = 2;
constexpr size_t kStagingBytes = size_t{kStages} * kStageRows * kThreads * 16;

__device__ inline void CopyAsync16(void* shared_destination, const void* global_source) {
  const unsigned destination = static_cast<unsigned>(__cvta_generic_to_shared(shared_destination));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(destination), "l"(global_source)
               : "memory");
}
__device__ inline void CommitCopies() { asm volatile("cp.async.commit_group;" ::: "memory"); }
// Waits until at most kPending of this thread's committed copy groups are still in flight.
template <int kPending>
__device__ inline void WaitCopies() {
  asm volatile("cp.async.wait_group %0;" ::"n"(kPending) : "memory");
}

// Shared memory of a block: the staging of its tile's rows, q, φ(q) of its features, the partial
// sums, the buffered tokens' decays and weights.
size_t SharedBytes(const PowerAttentionShape& shape, int tile_features) {
  const int group = shape.num_heads / shape.num_kv_heads;
  return kStagingBytes + sizeof(float) * (2 * group * shape.head_dim + group * tile_features +
                                          group + (group + 1) * shape.buffer_tokens);
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
// [rows × H], arrivals [rows × kv heads].
struct DecodeScratch {
  float* numerators;
  float* denominators;
  unsigned* arrivals;

  __device__ DecodeScratch(float* scratch, const PowerAttentionShape& shape, int64_t count) {
    const int64_t heads = count * shape.num_heads;
    numerators = scratch;
    denominators = scratch + heads * shape.head_dim;
    arrivals = reinterpret_cast<unsigned*>(denominators + heads);
  }
};

// Run by the last block of a (row, kv head) to arrive, once every tile's partial sums are in
// scratch: appends the token (k, v, log g) to the head's buffer, then writes each query head g of
// the group, out = (e^A·s^p·num + Σ_s w_s v_s) / (e^A·s^p·den + Σ_s w_s + ε) over the buffered
// tokens s (this one included), w_s = (s·q·k_s)^p·e^{A_s}, A_s the log gates after s and A all of
// the buffer's. The buffer must have room (the engine folds full ones). Work is spread over
// the block (a warp per token for the weights, tokens shared out for the sums), so that no thread
// walks the buffer alone: its reads would wait one after another.
__device__ __noinline__ void FinishHeads(const PowerAttentionShape& shape, const AttentionRows& rows,
                                   const DecodeRow& decode, const DecodeScratch& scratch,
                                   LayerOffsets layer, const float* q, float* decay,
                                   float* weights, float* sums) {
  const int d = shape.head_dim;
  const int N = shape.buffer_tokens;
  const int h = blockIdx.y;
  const int group = shape.num_heads / shape.num_kv_heads;
  float* buffer = reinterpret_cast<float*>(static_cast<char*>(decode.state) + layer.buffer) +
                  h * BufferFloatsPerHead(shape);
  float* log_gates = buffer + kBufferHeaderFloats;
  float* keys = log_gates + N;
  float* values = keys + N * d;
  // Every thread reads the count before thread 0 moves it on.
  __shared__ int buffered;
  if (threadIdx.x == 0) buffered = static_cast<int>(__ldcg(buffer));
  __syncthreads();
  const int n = buffered + 1;
  const int64_t kv_row = decode.row * shape.num_kv_heads + h;
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    keys[(n - 1) * d + j] = rows.k[kv_row * d + j];
    values[(n - 1) * d + j] = rows.v[kv_row * d + j];
  }
  if (threadIdx.x == 0) {
    log_gates[n - 1] = rows.log_gate ? rows.log_gate[kv_row] : 0.0f;
    buffer[0] = static_cast<float>(n);
  }
  __syncthreads();
  __shared__ float state_decay;
  if (threadIdx.x < 32) {
    const float all = DecaysToNow(log_gates, n, decay);
    if (threadIdx.x == 0) state_decay = all;
  }
  __syncthreads();
  // Weights: a warp per token, its lanes across the key (coalesced loads).
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll 2
  for (int s = warp; s < n; s += blockDim.x / 32) {
    float dots[kMaxGroup] = {};
    for (int j = lane; j < d; j += 32) {
      const float k = keys[s * d + j];
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
        if (g < group) dots[g] += q[g * d + j] * k;
      }
    }
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g < group) {
        const float dot = WarpSum(dots[g]);
        if (lane == 0) weights[g * N + s] = EvenPower(shape.scale * dot, shape.degree) * decay[s];
      }
    }
  }
  // Weighted values: each thread up to kMaxOutputsPerThread outputs (g, j) over a share of the
  // tokens; shares meet in `sums` (the tile's partial sums, already passed on to scratch).
  constexpr int kMaxOutputsPerThread = kMaxGroup * 128 / kThreads;
  const int outputs = group * d;
  const int span = min(outputs, static_cast<int>(blockDim.x));
  const int parts = blockDim.x / span;
  const int part = threadIdx.x / span;
  for (int o = threadIdx.x; o < outputs + group; o += blockDim.x) sums[o] = 0.0f;
  __syncthreads();
  if (part < parts) {
    float acc[kMaxOutputsPerThread] = {};
#pragma unroll 4
    for (int s = part; s < n; s += parts) {
#pragma unroll
      for (int i = 0; i < kMaxOutputsPerThread; ++i) {
        const int o = threadIdx.x % span + i * span;
        if (o < outputs) acc[i] += weights[(o / d) * N + s] * values[s * d + o % d];
      }
    }
#pragma unroll
    for (int i = 0; i < kMaxOutputsPerThread; ++i) {
      const int o = threadIdx.x % span + i * span;
      if (o < outputs) atomicAdd(&sums[o], acc[i]);
    }
  }
  if (warp < group) {
    float total = 0.0f;
    for (int s = lane; s < n; s += 32) total += weights[warp * N + s];
    total = WarpSum(total);
    if (lane == 0) sums[outputs + warp] = total;
  }
  __syncthreads();
  const float carried = state_decay * shape.scale_pow;
  for (int o = threadIdx.x; o < outputs; o += blockDim.x) {
    const int g = o / d, j = o % d;
    const int query_head = h * group + g;
    const int64_t partial = blockIdx.z * shape.num_heads + query_head;  // its sums in scratch
    const float inverse = 1.0f / (carried * __ldcg(&scratch.denominators[partial]) +
                                  sums[outputs + g] + kNormalizerEpsilon);
    rows.out[(decode.row * shape.num_heads + query_head) * d + j] =
        (carried * __ldcg(&scratch.numerators[partial * d + j]) + sums[o]) * inverse;
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
  extern __shared__ __align__(16) float shared[];
  const int d = shape.head_dim;
  const int D = shape.expanded_dim;
  const int group = shape.num_heads / shape.num_kv_heads;
  const int h = blockIdx.y;
  const DecodeRow decode = decode_rows[blockIdx.z];
  const int first_feature = blockIdx.x * tile_size;
  const int tile = min(tile_size, D - first_feature);

  uint4* staging = reinterpret_cast<uint4*>(shared);  // [kStages × kStageRows × kThreads]
  float* q = shared + kStagingBytes / sizeof(float);  // [group × d]
  float* phi_q = q + group * d;              // [group × tile_size]
  float* sum = phi_q + group * tile_size;    // [group × d] numerators, then [group] denominators
  float* decay = sum + group * (d + 1);      // [N], for FinishHeads
  float* weights = decay + shape.buffer_tokens;  // [group × N], for FinishHeads
  __shared__ bool last_to_arrive;

  // The first stages are on their way before φ is made, so the two latencies overlap.
  const Storage* S =
      reinterpret_cast<const Storage*>(static_cast<const char*>(decode.state) + layer.state) +
      static_cast<int64_t>(h) * D * (d + 1);
  const Storage* z = S + static_cast<int64_t>(D) * d;
  const int lanes = d / kSize;
  const int col = (threadIdx.x % lanes) * kSize;
  const int row_groups = blockDim.x / lanes;
  const int first_row = threadIdx.x / lanes;
  const int stage_rows = kStageRows * row_groups;
  auto staged = [&](int stage, int r) -> uint4& {
    return staging[(stage * kStageRows + r) * kThreads + threadIdx.x];
  };
  auto fetch = [&](int stage, int base) {
#pragma unroll
    for (int r = 0; r < kStageRows; ++r) {
      const int row = base + first_row + r * row_groups;
      if (row < tile) {
        CopyAsync16(&staged(stage, r), S + static_cast<int64_t>(first_feature + row) * d + col);
      }
    }
    CommitCopies();
  };
#pragma unroll
  for (int stage = 0; stage < kStages - 1; ++stage) fetch(stage, stage * stage_rows);

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
  int stage = 0;
  for (int base = 0; base < tile; base += stage_rows) {
    WaitCopies<kStages - 2>();  // the stage holding `base` has landed
#pragma unroll
    for (int r = 0; r < kStageRows; ++r) {
      const int row = base + first_row + r * row_groups;
      if (row < tile) {
        ReadRow<Storage, kGroup>(Widen<Storage>(staged(stage, r)), phi_q + row, tile_size, group,
                                 numerator);
      }
    }
    fetch((stage + kStages - 1) % kStages, base + (kStages - 1) * stage_rows);
    stage = (stage + 1) % kStages;
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
  FinishHeads(shape, rows, decode, scratch, layer, q, decay, weights, sum);
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

// grid (kv heads, sessions): copies a session's buffered tokens of one kv head into rows and
// empties the buffer.
__global__ void GatherKernel(PowerAttentionShape shape, const BufferedRows* sessions,
                             LayerOffsets layer, float* k, float* v, float* log_gate) {
  const BufferedRows session = sessions[blockIdx.y];
  const int h = blockIdx.x;
  const int d = shape.head_dim;
  const int N = shape.buffer_tokens;
  float* buffer = reinterpret_cast<float*>(static_cast<char*>(session.slot) + layer.buffer) +
                  h * BufferFloatsPerHead(shape);
  const float* log_gates = buffer + kBufferHeaderFloats;
  const float* keys = log_gates + N;
  const float* values = keys + N * d;
  for (int i = threadIdx.x; i < session.tokens * d; i += blockDim.x) {
    const int64_t row = session.first_row + i / d;
    k[(row * shape.num_kv_heads + h) * d + i % d] = keys[i];
    v[(row * shape.num_kv_heads + h) * d + i % d] = values[i];
  }
  for (int s = threadIdx.x; s < session.tokens; s += blockDim.x) {
    log_gate[(session.first_row + s) * shape.num_kv_heads + h] = log_gates[s];
  }
  __syncthreads();
  if (threadIdx.x == 0) buffer[0] = 0.0f;
}

}  // namespace

int64_t DecodeScratchFloats(const PowerAttentionShape& shape, int64_t count) {
  return count * (shape.num_heads * (shape.head_dim + 1) + shape.num_kv_heads);
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
}

void GatherDecodeBuffers(const PowerAttentionShape& shape, const BufferedRows* sessions,
                         int64_t count, LayerOffsets layer, float* k, float* v, float* log_gate,
                         cudaStream_t stream) {
  if (count == 0) return;
  GatherKernel<<<dim3(shape.num_kv_heads, static_cast<unsigned>(count)), kThreads, 0, stream>>>(
      shape, sessions, layer, k, v, log_gate);
}

}  // namespace sympow::kernels
