// Decode with deferred state updates, in two launches per layer.
// 1. A block per item (session, kv head, tile of features; on tensor cores, a span of rows that
//    may cross items) streams its tile of S through shared memory (cp.async) into partial
//    numerators φ(q)ᵀS, and z into partial denominators φ(q)·z, added into the scratch. A bf16
//    state is multiplied on tensor cores (StreamStatesMma, kernels/decode_stream_mma.cuh), an fp32
//    one too where queries are grouped (in TF32 parts), else on CUDA cores (StreamStates). It is
//    launched to be set up while the kernel before it ends (the previous layer's FinishHeads, in a
//    step of attention alone) and puts its first rows of S in flight meanwhile: no kernel that may
//    still run writes a state (the folds and prefills that do are ordinary launches, over before
//    it; after a launch 1 that folds, FinishHeads lets the next launch start only when it ends). It
//    waits for that kernel before it reads q or touches the scratch, which FinishHeads zeroes.
// 2. FinishHeads: a block per (session, kv head) adds the token to the head's decode buffer,
//    attends over the buffer and writes the outputs from both parts (FinishHeadsWarps, a warp
//    per (session, kv head), for steps of many). It is launched to start while the last blocks
//    of launch 1 still run (for few sessions of fp32 state on tensor cores, with its first ones:
//    LaunchStreamStatesMma leaves its blocks room): the buffer's attention needs nothing from
//    them, only the final sums wait. It zeroes the sums it read, so the scratch needs no clearing
//    before the next layer (no memset node between layers). It lets the launch after it start at
//    once, so that the next layer's launch 1 takes the SMs its blocks leave idle.
// A buffer that fills is folded into its state by launch 1 of the step that fills it, on the bf16
// tensor-core path (kernels/decode_fold.cuh), else by the engine after the step (through the
// prefill, see GatherDecodeBuffers): a state is written once every N tokens instead of every token.
#include <cuda_bf16.h>

#include "kernels/decode_common.cuh"
#include "kernels/decode_finish_warps.cuh"
#include "kernels/decode_fold.cuh"
#include "kernels/decode_items.cuh"
#include "kernels/decode_stream_mma.cuh"
#include "kernels/grid.cuh"
#include "kernels/mma_bf16.cuh"
#include "kernels/power_attention.h"
#include "kernels/power_common.cuh"

namespace sympow::kernels {
namespace {

// The StreamStates instance for `group` query heads per kv head: its numerators live in
// registers, sized exactly for the common groups.
constexpr int KernelGroup(int group) {
  return group == 1 || group == 2 || group == 4 || group == 5 ? group : kMaxGroup;
}
// Blocks of StreamStates<·, kGroup> an SM holds (its launch bounds): fewer as the group grows.
constexpr int BlocksPerSM(int kernel_group) {
  return kernel_group <= 2 ? 4 : (kernel_group <= 5 ? 3 : 2);
}
// StreamStates streams rows through shared memory in kStages stages of kStageRows rows (16 bytes
// each) per thread: kStages − 1 stages are always in flight. Each thread reads back only what it
// copied, so no barrier is needed between copy and use.
constexpr int kStages = 4;
constexpr int kStageRows = 2;
constexpr size_t kStagingBytes = size_t{kStages} * kStageRows * kThreads * 16;

// Shared memory besides the staging: q, φ(q) of the tile's features, the numerators' sums.
size_t TileSharedBytes(const PowerAttentionShape& shape, int tile_features) {
  const int group = shape.num_heads / shape.num_kv_heads;
  return sizeof(float) * group * (2 * shape.head_dim + tile_features);
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

template <typename Storage>
__device__ inline Item BlockItem(const PowerAttentionShape& shape, TilePlan plan,
                                 const DecodeRow* decode_rows, int64_t state_offset) {
  const int64_t pair = blockIdx.x / plan.tiles;
  const int first = static_cast<int>(blockIdx.x - pair * plan.tiles) * plan.tile_features;
  return PairItem<Storage>(shape, decode_rows, state_offset, pair, first,
                           min(plan.tile_features, shape.expanded_dim - first));
}

// Loads q, makes φ(q) of the item's features into phi [group × stride] (zero up to `padded`
// features), adds φ(q)·z into the scratch's denominators and zeroes sums [group × d]. Called by
// the whole block while its first rows are in flight; ends with a barrier.
template <typename Storage>
__device__ void PrepareItem(const PowerAttentionShape& shape, const Item& item, const float* q_rows,
                            float* q, float* phi, int stride, int padded, float* sums,
                            const DecodeScratch& scratch) {
  const int d = shape.head_dim;
  const int group = shape.num_heads / shape.num_kv_heads;
  LoadQueriesClearSums(item, q_rows, d, group, d, q, sums);
  const Storage* z = static_cast<const Storage*>(item.state) + int64_t{shape.expanded_dim} * d;
  float denominator[kMaxGroup] = {};
  for (int f = threadIdx.x; f < padded; f += blockDim.x) {
    const bool inside = f < item.tile;
    const uint8_t* factors = shape.monomials + (item.first_feature + f) * shape.degree;
    const float z_f = inside ? LoadOne(z + item.first_feature + f) : 0.0f;
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g < group) {
        const float phi_f = inside ? Monomial(q + g * d, factors, shape.degree) : 0.0f;
        phi[g * stride + f] = phi_f;
        denominator[g] += phi_f * z_f;
      }
    }
  }
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g < group) {
      const float total = WarpSum(denominator[g]);
      if (threadIdx.x % 32 == 0) atomicAdd(&scratch.denominators[item.head + g], total);
    }
  }
  __syncthreads();
}

// grid (items): the CUDA-core path, for fp32 states without grouped queries (and shapes
// StreamStatesMma does not take).
template <typename Storage, int kGroup>
__global__ void __launch_bounds__(kThreads, BlocksPerSM(kGroup))
    StreamStates(PowerAttentionShape shape, const float* q_rows, const DecodeRow* decode_rows,
                 int64_t state_offset, TilePlan plan, DecodeScratch scratch) {
  constexpr int kSize = Vector<Storage>::kSize;
  extern __shared__ __align__(16) float shared[];
  const int d = shape.head_dim;
  const int group = shape.num_heads / shape.num_kv_heads;
  AllowDependentsToStart();
  const Item item = BlockItem<Storage>(shape, plan, decode_rows, state_offset);
  uint4* staging = reinterpret_cast<uint4*>(shared);  // [kStages × kStageRows × kThreads]
  float* q = shared + kStagingBytes / sizeof(float);  // [group × d]
  float* sums = q + group * d;                        // [group × d]
  float* phi = sums + group * d;                      // [group × tile_features]

  const Storage* S = static_cast<const Storage*>(item.state);
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
      if (row < item.tile) {
        CpAsync16(&staged(stage, r), S + static_cast<int64_t>(item.first_feature + row) * d + col);
      }
    }
    CpAsyncCommit();
  };
#pragma unroll
  for (int stage = 0; stage < kStages - 1; ++stage) fetch(stage, stage * stage_rows);
  WaitForPrimary();
  PrepareItem<Storage>(shape, item, q_rows, q, phi, plan.tile_features, item.tile, sums, scratch);

  float numerator[kGroup][kSize] = {};
  int stage = 0;
  for (int base = 0; base < item.tile; base += stage_rows) {
    CpAsyncWait<kStages - 2>();  // the stage holding `base` has landed
#pragma unroll
    for (int r = 0; r < kStageRows; ++r) {
      const int row = base + first_row + r * row_groups;
      if (row < item.tile) {
        ReadRow<Storage, kGroup>(Widen<Storage>(staged(stage, r)), phi + row, plan.tile_features,
                                 group, numerator);
      }
    }
    fetch((stage + kStages - 1) % kStages, base + (kStages - 1) * stage_rows);
    stage = (stage + 1) % kStages;
  }
  // Lanes of a warp that share columns add up first, then the warps in shared memory.
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    if (g < group) {
#pragma unroll
      for (int j = 0; j < kSize; ++j) {
        float partial = numerator[g][j];
        for (int offset = lanes; offset < 32; offset *= 2)
          partial += __shfl_xor_sync(0xffffffffu, partial, offset);
        if (threadIdx.x % 32 < lanes) atomicAdd(&sums[g * d + col + j], partial);
      }
    }
  }
  __syncthreads();
  AddNumerators(shape, item, sums, scratch);
}

template <typename Storage>
void LaunchStreamStates(int group, size_t shared, cudaStream_t stream,
                        const PowerAttentionShape& shape, const float* q,
                        const DecodeRow* decode_rows, int64_t state_offset, TilePlan plan,
                        DecodeScratch scratch) {
  const unsigned blocks = static_cast<unsigned>(plan.items);
  switch (KernelGroup(group)) {
    case 1:
      return LaunchAfterStarted(StreamStates<Storage, 1>, blocks, kThreads, shared, stream, shape,
                                q, decode_rows, state_offset, plan, scratch);
    case 2:
      return LaunchAfterStarted(StreamStates<Storage, 2>, blocks, kThreads, shared, stream, shape,
                                q, decode_rows, state_offset, plan, scratch);
    case 4:
      return LaunchAfterStarted(StreamStates<Storage, 4>, blocks, kThreads, shared, stream, shape,
                                q, decode_rows, state_offset, plan, scratch);
    case 5:
      return LaunchAfterStarted(StreamStates<Storage, 5>, blocks, kThreads, shared, stream, shape,
                                q, decode_rows, state_offset, plan, scratch);
    default:
      return LaunchAfterStarted(StreamStates<Storage, kMaxGroup>, blocks, kThreads, shared, stream,
                                shape, q, decode_rows, state_offset, plan, scratch);
  }
}

// From this many (row, kv head) items an SM, FinishHeadsWarps finishes a step, below FinishHeads:
// a warp per item takes longer over one item than a block, but holds the SM far less. Measured
// on an H200 (bench/results/decode_session13.md): from 4 an SM, 124m bf16 950 → 900 µs a step at
// 64 sessions and 3,545 → 3,044 at 256; from 1 an SM, 16 sessions went 321 → 536.
constexpr int kFinishWarpsItemsPerSM = 4;

// Whether a step of `count` rows finishes by FinishHeadsWarps (head_dim 64 and 128 only).
bool FinishesByWarps(const PowerAttentionShape& shape, int64_t count) {
  return count * shape.num_kv_heads >= int64_t{kFinishWarpsItemsPerSM} * MultiprocessorCount() &&
         (shape.head_dim == 64 || shape.head_dim == 128);
}

// Buffered tokens FinishHeads holds in shared memory at once (keys and values: 32 KB).
__host__ __device__ inline int FinishChunkTokens(const PowerAttentionShape& shape) {
  return 4096 / shape.head_dim;
}

size_t FinishSharedBytes(const PowerAttentionShape& shape) {
  const int group = shape.num_heads / shape.num_kv_heads;
  const int chunk = FinishChunkTokens(shape);
  return sizeof(float) * (group * shape.head_dim + 2 * chunk * shape.head_dim + group * chunk +
                          shape.buffer_tokens);
}

// grid (kv heads, rows), after StreamStates. Appends the token (k, v, log g) to the head's buffer,
// then writes each query head g of the group, out = (e^A·s^p·num + Σ_s w_s v_s) / (e^A·s^p·den +
// Σ_s w_s + ε) over the buffered tokens s (this one included), w_s = (s·q·k_s)^p·e^{A_s}, A_s the
// log gates after s and A all of the buffer's; num and den are StreamStates' sums. The buffer
// must have room (the engine folds full ones); rows on `padding_state` (padding of a recorded
// batch, which nothing folds) attend the same way but leave their buffers empty. Tokens pass
// through shared memory in chunks, each chunk's keys and values loaded at once. It may start while
// StreamStates still runs (LaunchAfterStarted): before WaitForPrimary it reads only what earlier
// launches wrote, never the scratch. After a launch 1 that folds (`folds`), buffers that filled
// are emptied, and the next launch starts only when this one ends: it may read a state that
// launch 1 writes (the next step's, with one layer).
__global__ void FinishHeads(PowerAttentionShape shape, AttentionRows rows,
                            const DecodeRow* decode_rows, LayerOffsets layer, DecodeScratch scratch,
                            const void* padding_state, bool folds) {
  constexpr int kOutputsPerThread = kMaxGroup * 128 / kThreads;
  extern __shared__ __align__(16) float shared[];
  const int d = shape.head_dim;
  const int h = blockIdx.x;
  const int group = shape.num_heads / shape.num_kv_heads;
  const int chunk = FinishChunkTokens(shape);
  const DecodeRow decode = decode_rows[blockIdx.y];
  float* q = shared;                       // [group × d]
  float* keys = q + group * d;             // [chunk × d]
  float* values = keys + chunk * d;        // [chunk × d]
  float* weights = values + chunk * d;     // [group × chunk]
  float* decay = weights + group * chunk;  // [N]
  __shared__ float state_decay;
  if (!folds) AllowDependentsToStart();

  const PairBuffer buffer(shape, rows, decode, layer, h);
  const int n = buffer.n;
  for (int i = threadIdx.x; i < group * d; i += blockDim.x) {
    q[i] = rows.q[(decode.row * shape.num_heads + h * group) * d + i];
  }
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    for (int s = lane; s < n; s += 32) decay[s] = buffer.LogGate(s);
    __syncwarp();
    const float all = DecaysToNow(decay, n, decay);
    if (lane == 0) state_decay = all;
  }

  float acc[kOutputsPerThread] = {};
  float total[kMaxGroup] = {};
  const int outputs = group * d;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int first = 0; first < n; first += chunk) {
    const int tokens = min(chunk, n - first);
    __syncthreads();  // the previous chunk is used up (and q, decay are in place)
    // Loads in batches, all in flight before the first store.
    constexpr int kBatch = 8;
    for (int base = threadIdx.x; base < tokens * d; base += kBatch * kThreads) {
      float key_in[kBatch], value_in[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int i = base + b * kThreads;
        if (i < tokens * d) {
          key_in[b] = buffer.Key(first + i / d)[i % d];
          value_in[b] = buffer.Value(first + i / d)[i % d];
        }
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int i = base + b * kThreads;
        if (i < tokens * d) {
          keys[i] = key_in[b];
          values[i] = value_in[b];
        }
      }
    }
    __syncthreads();
    // Weights: a warp per token, its lanes across the key.
    for (int s = warp; s < tokens; s += blockDim.x / 32) {
      float dots[kMaxGroup] = {};
      for (int j = lane; j < d; j += 32) {
#pragma unroll
        for (int g = 0; g < kMaxGroup; ++g) {
          if (g < group) dots[g] += q[g * d + j] * keys[s * d + j];
        }
      }
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
        if (g < group) {
          const float dot = WarpSum(dots[g]);
          if (lane == 0) {
            weights[g * chunk + s] = EvenPower(shape.scale * dot, shape.degree) * decay[first + s];
          }
        }
      }
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kOutputsPerThread; ++i) {
      const int o = threadIdx.x + i * kThreads;
      if (o < outputs) {
        const int g = o / d, j = o % d;
        for (int s = 0; s < tokens; ++s) acc[i] += weights[g * chunk + s] * values[s * d + j];
      }
    }
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g < group) {
        for (int s = 0; s < tokens; ++s) total[g] += weights[g * chunk + s];
      }
    }
  }
  const float carried = state_decay * shape.scale_pow;
  WaitForPrimary();  // the sums of launch 1
#pragma unroll
  for (int i = 0; i < kOutputsPerThread; ++i) {
    const int o = threadIdx.x + i * kThreads;
    if (o < outputs) {
      const int g = o / d;
      float weight_sum = 0.0f;
#pragma unroll
      for (int x = 0; x < kMaxGroup; ++x) {
        if (x == g) weight_sum = total[x];
      }
      const int64_t head = blockIdx.y * shape.num_heads + h * group + g;
      const float inverse =
          1.0f / (carried * scratch.denominators[head] + weight_sum + kNormalizerEpsilon);
      float& numerator = scratch.numerators[head * d + o % d];
      rows.out[(decode.row * shape.num_heads + h * group) * d + o] =
          (carried * numerator + acc[i]) * inverse;
      numerator = 0.0f;
    }
  }
  // Every thread has read the denominators, the old count and the buffered tokens by now.
  __syncthreads();
  if (threadIdx.x < group) {
    scratch.denominators[blockIdx.y * shape.num_heads + h * group + threadIdx.x] = 0.0f;
  }
  // The token joins the buffer.
  if (decode.state != padding_state) buffer.Advance(threadIdx.x, blockDim.x, folds);
}

// grid (kv heads, sessions): copies a session's buffered tokens of one kv head into rows and
// empties the buffer.
__global__ void GatherKernel(PowerAttentionShape shape, const BufferedRows* sessions,
                             LayerOffsets layer, float* k, float* v, float* log_gate) {
  const BufferedRows session = sessions[blockIdx.y];
  const int h = blockIdx.x;
  const int d = shape.head_dim;
  const BufferView buffer(shape, session.slot, layer, h);
  for (int i = threadIdx.x; i < session.tokens * d; i += blockDim.x) {
    const int64_t row = session.first_row + i / d;
    k[(row * shape.num_kv_heads + h) * d + i % d] = buffer.keys[i];
    v[(row * shape.num_kv_heads + h) * d + i % d] = buffer.values[i];
  }
  for (int s = threadIdx.x; s < session.tokens; s += blockDim.x) {
    log_gate[(session.first_row + s) * shape.num_kv_heads + h] = buffer.log_gates[s];
  }
  __syncthreads();
  if (threadIdx.x == 0) buffer.header[0] = 0.0f;
}

}  // namespace

int64_t DecodeScratchFloats(const PowerAttentionShape& shape, int64_t count) {
  return count * shape.num_heads * (shape.head_dim + 1);
}

bool FoldsInDecode(const PowerAttentionShape& shape, bool bf16_state) {
  return bf16_state && shape.degree == 2 && (shape.head_dim == 64 || shape.head_dim == 128) &&
         shape.buffer_tokens <= kFoldTokens;
}

void PowerDecode(const PowerAttentionShape& shape, const AttentionRows& rows,
                 const DecodeRow* decode_rows, int64_t count, LayerOffsets layer, bool bf16_state,
                 float* scratch, cudaStream_t stream, const void* padding_state,
                 bool fold_full_buffers) {
  PowerDecodeStream(shape, rows, decode_rows, count, layer, bf16_state, scratch, stream,
                    padding_state, fold_full_buffers);
  PowerDecodeFinish(shape, rows, decode_rows, count, layer, scratch, stream, padding_state,
                    fold_full_buffers);
}

void PowerDecodeStream(const PowerAttentionShape& shape, const AttentionRows& rows,
                       const DecodeRow* decode_rows, int64_t count, LayerOffsets layer,
                       bool bf16_state, float* scratch, cudaStream_t stream,
                       const void* padding_state, bool fold_full_buffers) {
  if (count == 0) return;
  const int group = shape.num_heads / shape.num_kv_heads;
  const DecodeScratch sums(scratch, shape, count);
  const FoldArgs fold_args{rows, layer, padding_state};
  const FoldArgs* folds = fold_full_buffers ? &fold_args : nullptr;
  // FinishHeads takes a block an item.
  const int64_t finish_blocks = FinishesByWarps(shape, count) ? 0 : count * shape.num_kv_heads;
  // The tensor-core path reads degree 2's factor pairs. fp32 states take it where queries are
  // grouped: at the 14B shape (group 5) a step took 13-19% less than on CUDA cores (where each
  // state value costs an FMA a query head) at 16-87 sessions, and truncated TF32 parts and the
  // split φ(q) took 13-16% more off at 16 and 64; without grouping (the 124M shape) 8-28% more at
  // 64 and 256 (bench/results/decode_session20.md).
  const bool tensor_cores = shape.degree == 2 && (shape.head_dim == 64 || shape.head_dim == 128);
  if (tensor_cores && (bf16_state || group > 1)) {
    const bool wide = shape.head_dim == 128;
    const auto launch = bf16_state ? (wide ? LaunchStreamStatesMma<Bf16StateOperands, 128>
                                           : LaunchStreamStatesMma<Bf16StateOperands, 64>)
                                   : (wide ? LaunchStreamStatesMma<Fp32StateOperands, 128>
                                           : LaunchStreamStatesMma<Fp32StateOperands, 64>);
    launch(stream, shape, rows.q, decode_rows, count, layer.state, sums, folds, finish_blocks);
  } else {
    // φ of a tile fits the 48 KB a launch gets without opting in, less the kernel's own.
    constexpr size_t kSharedBytes = 47 * 1024;
    const int64_t row_bytes = shape.head_dim * (bf16_state ? 2 : 4);
    const TilePlan plan =
        PlanTiles(shape, count, row_bytes, 8,
                  static_cast<int64_t>((kSharedBytes - kStagingBytes - TileSharedBytes(shape, 0)) /
                                       sizeof(float)) /
                      group,
                  int64_t{MultiprocessorCount()} * BlocksPerSM(KernelGroup(group)));
    const size_t shared = kStagingBytes + TileSharedBytes(shape, plan.tile_features);
    if (bf16_state) {
      LaunchStreamStates<__nv_bfloat16>(group, shared, stream, shape, rows.q, decode_rows,
                                        layer.state, plan, sums);
    } else {
      LaunchStreamStates<float>(group, shared, stream, shape, rows.q, decode_rows, layer.state,
                                plan, sums);
    }
  }
}

void PowerDecodeFinish(const PowerAttentionShape& shape, const AttentionRows& rows,
                       const DecodeRow* decode_rows, int64_t count, LayerOffsets layer,
                       float* scratch, cudaStream_t stream, const void* padding_state,
                       bool fold_full_buffers) {
  if (count == 0) return;
  const int group = shape.num_heads / shape.num_kv_heads;
  const DecodeScratch sums(scratch, shape, count);
  const int64_t items = count * shape.num_kv_heads;
  if (FinishesByWarps(shape, count)) {
    // Without grouped queries a warp holds one head's sums: a third of the registers, and a
    // step of 256 sessions of the 124M shape fits the GPU at once.
    const auto finish =
        group == 1 ? (shape.head_dim == 64 ? FinishHeadsWarps<64, 1> : FinishHeadsWarps<128, 1>)
                   : (shape.head_dim == 64 ? FinishHeadsWarps<64, kMaxGroup>
                                           : FinishHeadsWarps<128, kMaxGroup>);
    LaunchAfterStarted(finish, static_cast<unsigned>((items + kFinishWarps - 1) / kFinishWarps),
                       dim3(kThreads), FinishWarpsSharedBytes(shape), stream, shape, rows,
                       decode_rows, items, layer, sums, padding_state, fold_full_buffers);
  } else {
    LaunchAfterStarted(FinishHeads, dim3(shape.num_kv_heads, static_cast<unsigned>(count)),
                       dim3(kThreads), FinishSharedBytes(shape), stream, shape, rows, decode_rows,
                       layer, sums, padding_state, fold_full_buffers);
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
