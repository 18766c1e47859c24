// Degree-2 chunked prefill on BF16 tensor cores (fp32 accumulation), for head_dim 64 and 128:
// the state-sized products and the attention form inside a chunk on sm_90a's warpgroup wgmma
// (kernels/wgmma.cuh: A in registers, B in shared memory, issued in chains and waited for once).
// φ is never stored: its values are made in registers, straight into the A fragments.
//
// Features are visited in k-steps of 16 rows. Step (i, jb) holds the monomials x_i·x_j for
// j in [16·jb, 16·jb + 16), in the order SecondFactorOffset gives (a thread's two accumulator
// rows take adjacent j); the rows with j < i are not features and stay zero. The steps run
// jb-major (for jb, for i < 16·jb + 16), so a warp keeps x_j for a whole jb in registers.
// feature_rows maps each of these k-rows to its feature in StateLayout order (−1: none). The key
// weights (multinomial coefficients) are in the stored states; the output pass's accumulators
// leave them out and put them in as they store.
//
// Three kernels:
//  1. ChunkValuesKernel, per (sub-chunk of 64 tokens, kv head): the decayed values
//     exp(G_last − G_t)·[v_t | 1 | 0…] as bf16, the keys as bf16 token pairs (a φ(K)ᵀ fragment
//     register, a feature at two tokens, is then one bf16x2 multiply) and the sub-chunk's decay
//     exp(G_last), once for every block of kernel 2 to read;
//  2. ChunkStatesKernel, per (block of k-rows, kv head, segment): holds its rows of [S | z] in
//     registers (fp32) and walks the segment's sub-chunks in order, the next one's keys and
//     values in flight (bulk copies on mbarriers) while this one is multiplied. At each chunk it
//     stores the state before it (bf16, [S | z | 0] by k-row, in wgmma's K-major core matrices)
//     in the workspace when outputs are wanted; each sub-chunk decays the state and adds
//     φ(K)ᵀ·(decayed values) (wgmma: A = φ(K)ᵀ, B = the values). The final state goes back to the
//     slot. A fold's block walks several tiles of k-rows over its one sub-chunk, loading the next
//     tile's state while it multiplies one: one block a tile spent most of its life waiting for its
//     state to arrive.
//  3. ChunkOutputKernel (not when only the states advance), per (query head, chunk part of
//     Mma::kBlockRows rows): s²·exp(G_t)·φ(q_t)·[S | z] over the stored state before the chunk
//     (streamed through shared memory by bulk copies on mbarriers; wgmma: A = φ(q), B = the
//     state), plus the gated causal attention (s·q·k)²·exp(G_t − G_s) over the chunk's keys up to
//     the part's rows (wgmma), both into one accumulator; out = numerator / (denominator + ε).
#include <cuda_bf16.h>

#include <algorithm>
#include <type_traits>

#include "kernels/bulk_copy.cuh"
#include "kernels/grid.cuh"
#include "kernels/mma_bf16.cuh"
#include "kernels/power_attention.h"
#include "kernels/power_common.cuh"
#include "kernels/power_prefill_mma.h"
#include "kernels/state_rows.cuh"
#include "kernels/wgmma.cuh"

namespace sympow::kernels {
namespace {

template <int kD>
struct Mma {
  // Tokens per chunk (a state before each, ChunkStatesKernel's) and query rows per
  // ChunkOutputKernel block (kBlockRows: a chunk's part; a block attends over its chunk's keys up
  // to its rows). At d 128 a state before is 2.5 MB a kv head, while 128 more keys a row add 2.7%
  // to the output pass's FLOPs: chunks of two parts, against chunks of 128 tokens a 14b layer's
  // prefill 4% faster on an H200 (bench/results/session26.md).
  static constexpr int kChunk = 256;
  static constexpr int kBlockRows = kD == 64 ? 256 : 128;
  static constexpr int kParts = kChunk / kBlockRows;
  // ChunkOutputKernel's query rows a warp: one 16-row tile, so that at d 64 a chunk is 16 warps,
  // which hide more latency than 8 warps of two tiles (0.30 ms less a 64k-token layer on an
  // H200, bench/results/decode_session8.md), and four warps make a warpgroup's 64-row wgmma.
  static constexpr int kWarpRows = 16;
  static constexpr int kWide = kD + 8;  // [S | z | 0…] columns
  static constexpr int kNTiles = kWide / 8;
  static constexpr int kColumnBlocks = kD / 16;
  static constexpr int kSteps = 16 * kColumnBlocks * (kColumnBlocks + 1) / 2;
  static constexpr int kRows = 16 * kSteps;  // k-rows
  // ChunkOutputKernel: a warp per kWarpRows query rows; the state streamed in stages of steps.
  static constexpr int kOutputWarps = kBlockRows / kWarpRows;
  static constexpr int kOutputThreads = 32 * kOutputWarps;
  // Stages of 16 steps at d 64 (8 at d 128): fewer waits than stages of 8 (4), which made the
  // kernel wait on its block barriers when it had them (bench/results/prefill_session11.md); on
  // mbarriers, stages of 8 at d 64 were 3-4% slower still (bench/results/session25.md). Each
  // part's keys and values take two stage slots after the state form (kKeysValuesSlot), which
  // leaves room for more than two stages. Measured on an H200 (bench/results/session24.md),
  // against two stages: at d 64 three 3% faster, four 2.5%; at d 128 four 3.6% faster, three
  // level.
  static constexpr int kStageSteps = kD == 64 ? 16 : 8;
  static constexpr int kStages = kD == 64 ? 3 : 4;
  static constexpr int kStageElements = kStageSteps * 16 * kWide;
  static_assert(kSteps % kStageSteps == 0);
  // Keys as bf16 token pairs (StoreKeyPairs), a row of kD words a pair of tokens and 8 more
  // (unused), so that a step's loads of four token pairs from shared memory hit distinct banks;
  // rows so spaced in the workspace too, so that a sub-chunk's are one bulk copy.
  static constexpr int kKeyPairStride = kD + 8;
  static constexpr int kQueryStride = kD + 8;  // fp32 queries, conflict-free float2 reads
  // A chunk's keys (StoreKeysKMajor: [kD × 64] a block of 64 tokens) and values
  // (StoreValuesKMajor's layout) in bf16 for the attention form's wgmmas, part by part (a part's
  // keys [kBlockRows × kD], then its values [kBlockRows × kWide]), which ChunkValuesKernel stores
  // in the workspace and ChunkOutputKernel copies into the stage slots that the state form is
  // first done with: part q into the two from kKeysValuesSlot + 2q, freed by stages
  // kStageCount − kStages + 2q and + 1. It needs them after the state form, and they land during
  // its last stages instead of being loaded by every thread between two block barriers. With the
  // attention form's weights made without a branch each, measured on an H200
  // (bench/results/session25.md): a layer's prefill 3% faster at d 64, 7.5% at d 128.
  static constexpr int kPartElements = kBlockRows * kD + kBlockRows * kWide;
  static constexpr int kKeysValuesElements = kParts * kPartElements;
  static constexpr int kStageCount = kSteps / kStageSteps;
  static constexpr int kKeysValuesSlot = kStageCount % kStages;
  static_assert(kPartElements <= 2 * kStageElements && kKeysValuesSlot + 2 * kParts <= kStages &&
                kStages >= 3 && kStageCount >= kStages);
};

// How ChunkValuesKernel and ChunkStatesKernel walk segments: each planned chunk of kPlanTokens
// (PlanPrefill's) in sub-chunks of kChunkTokens; ChunkStatesKernel holds 16 k-rows a warp (four
// warps: a warpgroup's 64-row wgmma), kWarpsPerBlock warps a block, and asks for kMinBlocksPerSM
// blocks an SM (its launch bounds; StatesBlocksPerSM may add one), issuing kChainStepsPerWait
// wgmmas (16 tokens each) before a wait; with kStoresStatesBefore, it stores the state before each
// planned chunk for ChunkOutputKernel (a fold's pass, without outputs, has none of that code or its
// registers). A block walks up to kTilesPerBlock tiles of its k-rows (TilesPerBlock), the next
// tile's state loaded while it works on one (registers for a second state tile).
template <int kD, int kPlanTokens, int kChunkTokens, int kMinBlocksPerSM, int kWarpsPerBlock,
          int kChainStepsPerWait, bool kStoresStatesBefore, int kTilesPerBlock>
struct StatesPass {
  static constexpr bool kStoresBefore = kStoresStatesBefore;
  static constexpr int kPlanChunk = kPlanTokens;
  static constexpr int kChunk = kChunkTokens;
  static constexpr int kSubChunks = kPlanChunk / kChunk;
  static_assert(kPlanChunk % kChunk == 0);
  static constexpr int kMinBlocks = kMinBlocksPerSM;
  static constexpr int kHeadDim = kD;
  static constexpr int kWarps = kWarpsPerBlock;
  static_assert(kWarps % 4 == 0, "whole warpgroups");
  static constexpr int kChainSteps = kChainStepsPerWait;
  static constexpr int kWarpRows = 16;
  static constexpr int kBlockRows = kWarps * kWarpRows;
  static constexpr int kTiles = kTilesPerBlock;
  static constexpr int kRowTiles = Mma<kD>::kRows / kBlockRows;
  static_assert(Mma<kD>::kRows % kBlockRows == 0 && kTiles <= kRowTiles);
  static constexpr int kValuesElements = kChunk * Mma<kD>::kWide;  // a sub-chunk's values
  static constexpr int kKeyPairWords = kChunk / 2 * Mma<kD>::kKeyPairStride;  // and key pairs
  static constexpr int kBuffer = kKeyPairWords * 4 + kValuesElements * 2;     // bytes
  // Two buffers; for each its mbarrier and reader count (ChunkStatesKernel); then the features of
  // the block's k-rows.
  static constexpr size_t kSharedBytes = 2 * kBuffer + 2 * (sizeof(uint64_t) + sizeof(int)) +
                                         sizeof(int) * (kTiles > 1 ? kTiles * kBlockRows : 0);
  // The state columns a thread moves at once (StateRows): 16 bytes in a fold, which is bound by
  // moving the states; pairs in place with outputs, whose segments are long (measured on an H200
  // (bench/results/decode_session14.md): 16 bytes there made prefill 4-9% slower).
  __host__ __device__ static constexpr int Run(bool bf16_states) {
    return kStoresBefore ? 2 : (bf16_states ? 8 : 4);
  }
};
// The blocks an SM ChunkStatesKernel's launch bounds ask for: a d-64 fold of bf16 states fits one
// block more than P's (80 registers), whose state loads keep more bytes in flight (a fold 4-5%
// faster on an H200, bench/results/prefill_session17.md); at d 128 or with fp32 states it would
// spill.
template <typename P, typename Storage>
struct StatesBlocksPerSM {
  static constexpr int value =
      P::kMinBlocks +
      (P::kHeadDim == 64 && !P::kStoresBefore && std::is_same_v<Storage, __nv_bfloat16> ? 1 : 0);
};

// Sub-chunks of 64 tokens and 16 k-rows a warp keep a block's registers (80 at d 64, 128 at
// d 128) and shared memory small enough for several blocks an SM, so one block's loads overlap
// another's multiplies. Measured on an H200 when these passes ran on mma.sync
// (bench/results/decode_session8.md): a fold (states only) 2.2x faster; a prefill 4% faster at
// d 128 but 12% slower at d 64, where one block an SM with 256-token chunks stays, in 16 warps
// (bench/results/prefill_session10.md has the wgmma passes' figures). Folds (states only) plan in
// sub-chunks; with outputs the states walk the output kernel's chunks, storing the state before
// each.
template <int kD>
using OutputStatesPass = std::conditional_t<kD == 64, StatesPass<64, 256, 256, 1, 16, 4, true, 1>,
                                            StatesPass<kD, Mma<kD>::kChunk, 64, 2, 8, 4, true, 1>>;
template <int kD>
using FoldStatesPass = StatesPass<kD, 64, 64, 2, 8, kD == 64 ? 2 : 4, false, kD == 64 ? 10 : 1>;

// ChunkOutputKernel's wgmmas issued back to back before a wait (WgmmaChainBf16), their A
// fragments in registers.
constexpr int kChainSteps = 4;

// One head's rows [kChunk × kD] of an fp32 [rows × heads·kD] matrix into shared memory as fp32
// (row stride `stride`), by cp.async: zero past n rows. The caller commits and waits.
template <int kD, int kChunk>
__device__ void CopyRowsAsync(const float* source, int heads, int head, int64_t first_row, int n,
                              float* to, int stride) {
  constexpr int kPerRow = kD / 4;
  for (int i = threadIdx.x; i < kChunk * kPerRow; i += blockDim.x) {
    const int t = i / kPerRow, c = (i % kPerRow) * 4;
    if (t < n) {
      CpAsync16(to + t * stride + c, source + ((first_row + t) * heads + head) * kD + c);
    } else {
      *reinterpret_cast<float4*>(to + t * stride + c) = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
  }
}

// The keys of a sub-chunk of kChunk (a multiple of 64) tokens as ChunkOutputKernel's wgmma reads B
// for Q·Kᵀ: per block of 64 tokens a [kD × 64] K-major matrix (d as k, tokens as n:
// KMajorOffset<64>), a 16-byte row of 8 dimensions per store. Zero past n.
template <int kD, int kChunk, int kThreads>
__device__ void StoreKeysKMajor(const float* k, int kv_heads, int kv_head, int64_t first_row, int n,
                                __nv_bfloat16* to) {
  static_assert(kChunk % 64 == 0);
  constexpr int kPerRow = kD / 8;
  for (int i = threadIdx.x; i < kChunk * kPerRow; i += kThreads) {
    const int t = i / kPerRow, c = (i % kPerRow) * 8;
    float4 x[2] = {make_float4(0.0f, 0.0f, 0.0f, 0.0f), make_float4(0.0f, 0.0f, 0.0f, 0.0f)};
    if (t < n) {
      const float* row = k + ((first_row + t) * kv_heads + kv_head) * kD + c;
      x[0] = *reinterpret_cast<const float4*>(row);
      x[1] = *reinterpret_cast<const float4*>(row + 4);
    }
    *reinterpret_cast<uint4*>(to + t / 64 * 64 * kD + KMajorOffset<64>(c, t % 64)) =
        make_uint4(PackBf16(x[0].x, x[0].y), PackBf16(x[0].z, x[0].w), PackBf16(x[1].x, x[1].y),
                   PackBf16(x[1].z, x[1].w));
  }
}

// [v_t | 1 | 0…]·scale_t (scale_t = 1 without `scale`) as ChunkStatesKernel's wgmma reads B (tokens
// as k: KMajorOffset; v's columns in StateRows' order for runs of `run`, StateColumn), a 16-byte
// row of 8 tokens per store. Zero past n.
template <int kD, int kChunk, int kThreads>
__device__ void StoreValuesKMajor(const float* v, int kv_heads, int kv_head, int64_t first_row,
                                  int n, const float* scale, int run, __nv_bfloat16* to) {
  constexpr int kWide = Mma<kD>::kWide;
  for (int i = threadIdx.x; i < kChunk / 8 * kWide; i += kThreads) {
    const int token_block = i / kWide, c = i % kWide;
    float x[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int t = token_block * 8 + e;
      const float scale_t = scale == nullptr ? 1.0f : scale[t];
      x[e] = 0.0f;
      if (t < n && c < kD) {
        x[e] = scale_t * v[((first_row + t) * kv_heads + kv_head) * kD + StateColumn(c, run)];
      } else if (t < n && c == kD) {
        x[e] = scale_t;
      }
    }
    *reinterpret_cast<uint4*>(to + KMajorOffset<kWide>(token_block * 8, c)) = make_uint4(
        PackBf16(x[0], x[1]), PackBf16(x[2], x[3]), PackBf16(x[4], x[5]), PackBf16(x[6], x[7]));
  }
}

// The keys of a sub-chunk as bf16 token pairs for ChunkStatesKernel: word (p, c) (row stride
// kKeyPairStride) holds column c of tokens 2p (low half) and 2p + 1, zero past n; one bf16x2
// multiply then makes a feature's values at both tokens, the pair an A fragment register holds.
template <int kD, int kChunk, int kThreads>
__device__ void StoreKeyPairs(const float* k, int kv_heads, int kv_head, int64_t first_row, int n,
                              uint32_t* to) {
  constexpr int kPerRow = kD / 4;
  for (int i = threadIdx.x; i < kChunk / 2 * kPerRow; i += kThreads) {
    const int p = i / kPerRow, c = (i % kPerRow) * 4;
    float4 x[2];
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int t = 2 * p + e;
      x[e] = t < n ? *reinterpret_cast<const float4*>(
                         k + ((first_row + t) * kv_heads + kv_head) * kD + c)
                   : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    *reinterpret_cast<uint4*>(to + p * Mma<kD>::kKeyPairStride + c) =
        make_uint4(PackBf16(x[0].x, x[1].x), PackBf16(x[0].y, x[1].y), PackBf16(x[0].z, x[1].z),
                   PackBf16(x[0].w, x[1].w));
  }
}

__device__ inline int RoundUp(int n, int multiple) {
  return (n + multiple - 1) / multiple * multiple;
}

// The step (i, jb) of k-row block `step`.
__device__ inline void StepOf(int step, int& i, int& jb) {
  jb = 0;
  while (step >= 16 * (jb + 1)) {
    step -= 16 * (jb + 1);
    ++jb;
  }
  i = step;
}

// Where k-row r of a step's 16 sits in its column block: j = 16·jb + SecondFactorOffset(r). Rows
// g and g + 8, an accumulator thread's pair, get adjacent j (one 8-byte load of their factors);
// so the A fragment's k-columns 2t, 2t + 1, 2t + 8, 2t + 9 of the output kernel are j = 4t + 0, 2,
// 1, 3 (one 16-byte load).
__host__ __device__ inline int SecondFactorOffset(int r) { return r < 8 ? 2 * r : 2 * (r - 8) + 1; }

// grid (sub-chunks, kv heads), 256 threads: a sub-chunk's decayed values [kChunk × kWide] (bf16,
// StoreValuesKMajor's layout), its keys as token pairs (StoreKeyPairs) and its decay (1 for a
// sub-chunk past its chunk's rows, which has neither values nor keys); with outputs, its rows of
// the chunk's keys and values for ChunkOutputKernel (Mma::kKeysValuesElements a chunk, by part).
template <int kD, typename P>
__global__ void __launch_bounds__(256)
    ChunkValuesKernel(PowerAttentionShape shape, AttentionRows rows, const PrefillChunk* chunks,
                      __nv_bfloat16* values, uint32_t* key_pairs, float* chunk_decays,
                      __nv_bfloat16* keys_values) {
  __shared__ float log_gate[P::kChunk];
  __shared__ float key_decay[P::kChunk];
  const int64_t sub = blockIdx.x;
  const int h = blockIdx.y;
  const PrefillChunk chunk = chunks[sub / P::kSubChunks];
  const int offset = static_cast<int>(sub % P::kSubChunks) * P::kChunk;
  const int n = min(P::kChunk, chunk.num_rows - offset);
  const int64_t first_row = chunk.first_row + offset;
  float* decay = chunk_decays + sub * shape.num_kv_heads + h;
  if (n <= 0) {
    if (threadIdx.x == 0) *decay = 1.0f;
    return;
  }
  if (threadIdx.x < 32) {
    ChunkLogGates<P::kChunk>(rows.log_gate, shape.num_kv_heads, h, first_row, n, log_gate);
  }
  __syncthreads();
  const float last = log_gate[n - 1];
  for (int t = threadIdx.x; t < P::kChunk; t += blockDim.x) {
    key_decay[t] = t < n ? expf(last - log_gate[t]) : 0.0f;
  }
  if (threadIdx.x == 0) *decay = expf(last);
  __syncthreads();
  // Pieces of 64 tokens, each layout of a piece right after the other, so that the second read of
  // its keys and of its values (fp32, 16 KB each at d 64) hits L2 instead of DRAM. Against whole
  // 256-token sub-chunks (this pass was 17% of a 64k-token 124m layer under Nsight Compute, DRAM
  // 71%), measured on an H200 (bench/results/session26.md): the layer 0.5-1% faster at 64k-128k.
  constexpr int kPiece = 64;
  static_assert(P::kChunk % kPiece == 0);
  const int64_t record = sub * shape.num_kv_heads + h;
  for (int piece = 0; piece < P::kChunk; piece += kPiece) {
    const int64_t piece_row = first_row + piece;
    const int piece_n = n - piece;
    if constexpr (P::kStoresBefore) {
      using M = Mma<kD>;
      __nv_bfloat16* chunk_keys =
          keys_values + (sub / P::kSubChunks * shape.num_kv_heads + h) * M::kKeysValuesElements;
      const int token = offset + piece;  // in the chunk
      __nv_bfloat16* part =
          chunk_keys + token / M::kBlockRows * M::kPartElements;  // keys, then values
      const int in_part = token % M::kBlockRows;
      StoreKeysKMajor<kD, kPiece, 256>(rows.k, shape.num_kv_heads, h, piece_row, piece_n,
                                       part + in_part * kD);
      StoreValuesKMajor<kD, kPiece, 256>(rows.v, shape.num_kv_heads, h, piece_row, piece_n, nullptr,
                                         2, part + M::kBlockRows * kD + in_part * M::kWide);
    }
    StoreKeyPairs<kD, kPiece, 256>(
        rows.k, shape.num_kv_heads, h, piece_row, piece_n,
        key_pairs + record * P::kKeyPairWords + piece / 2 * Mma<kD>::kKeyPairStride);
    StoreValuesKMajor<kD, kPiece, 256>(
        rows.v, shape.num_kv_heads, h, piece_row, piece_n, key_decay + piece,
        P::Run(shape.bf16_states), values + record * P::kValuesElements + piece * Mma<kD>::kWide);
  }
}

// grid (row tiles / tiles_per_block, kv heads, segments), P::kWarps warps: a block walks
// tiles_per_block (≤ P::kTiles) tiles of P::kBlockRows k-rows (the last block of a head fewer);
// without P::kStoresBefore (before_states unused) the states only advance. A segment of one
// sub-chunk (a fold's) is fetched once for all the tiles.
template <int kD, typename P, typename Storage>
__global__ void __launch_bounds__(P::kWarps * 32, StatesBlocksPerSM<P, Storage>::value)
    ChunkStatesKernel(PowerAttentionShape shape, AttentionRows rows, const PrefillSegment* segments,
                      const PrefillChunk* chunks, const __nv_bfloat16* decayed_values,
                      const uint32_t* key_pairs, const float* chunk_decays, int tiles_per_block,
                      __nv_bfloat16* before_states) {
  using M = Mma<kD>;
  extern __shared__ float4 shared_storage[];
  // Two buffers, each: key pairs [chunk / 2 × kKeyPairStride] (StoreKeyPairs' words), then
  // decayed values bf16 [chunk × kWide] (StoreValuesKMajor's layout); for each buffer the
  // mbarrier its copies complete on and how many warps have finished reading it (over all its
  // uses); then the features of the block's k-rows.
  auto keys_of = [&](int buffer) {
    return reinterpret_cast<uint32_t*>(reinterpret_cast<char*>(shared_storage) +
                                       buffer * P::kBuffer);
  };
  auto values_of = [&](int buffer) {
    return reinterpret_cast<__nv_bfloat16*>(keys_of(buffer) + P::kKeyPairWords);
  };
  auto* buffer_loaded = reinterpret_cast<uint64_t*>(keys_of(2));     // [2]
  auto* buffer_readers = reinterpret_cast<int*>(buffer_loaded + 2);  // [2]
  int* block_features = buffer_readers + 2;                          // [tiles · kBlockRows]

  const PrefillSegment segment = segments[blockIdx.z];
  const int h = blockIdx.y;
  const int D = shape.expanded_dim;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  const int64_t head_offset = static_cast<int64_t>(h) * D * (kD + 1);
  Storage* state = reinterpret_cast<Storage*>(segment.state) + head_offset;

  // The tokens of sub-chunk u (of chunk u / kSubChunks), ≤ 0 past the chunk's rows.
  auto tokens_of = [&](int u) {
    return min(P::kChunk, chunks[u / P::kSubChunks].num_rows - (u % P::kSubChunks) * P::kChunk);
  };
  const int first_tile = blockIdx.x * tiles_per_block;
  const int tiles = P::kTiles == 1 ? 1 : min(tiles_per_block, P::kRowTiles - first_tile);
  const int block_row0 = first_tile * P::kBlockRows;

  // The block walks steps (tile, sub-chunk), sub-chunk fastest; step s multiplies sub-chunk
  // first + s % sub_chunks from buffer s % 2 (a segment of one sub-chunk: loaded once, buffer 0).
  // Its key pairs and decayed values arrive by bulk copies that one thread issues (both are zeros
  // past its tokens; a sub-chunk without tokens is not multiplied); the last warp done with a
  // buffer loads the step two ahead into it, so no block barrier holds the warps together.
  const int first = segment.first_chunk * P::kSubChunks;
  const int sub_chunks = (segment.first_chunk + segment.num_chunks) * P::kSubChunks - first;
  const bool resident = sub_chunks == 1;
  const int loads = resident ? 1 : tiles * sub_chunks;
  auto fetch = [&](int step) {
    const int buffer = step % 2;
    const int64_t record = static_cast<int64_t>(first + step % sub_chunks) * shape.num_kv_heads + h;
    constexpr uint32_t kKeyBytes = P::kKeyPairWords * sizeof(uint32_t);
    constexpr uint32_t kValueBytes = P::kValuesElements * sizeof(__nv_bfloat16);
    MbarrierArriveExpecting(&buffer_loaded[buffer], kKeyBytes + kValueBytes);
    BulkCopyToShared(keys_of(buffer), key_pairs + record * P::kKeyPairWords, kKeyBytes,
                     &buffer_loaded[buffer]);
    BulkCopyToShared(values_of(buffer), decayed_values + record * P::kValuesElements, kValueBytes,
                     &buffer_loaded[buffer]);
  };
  if (threadIdx.x == 0) {
    for (int buffer = 0; buffer < 2; ++buffer) {
      MbarrierInit(&buffer_loaded[buffer], 1);
      buffer_readers[buffer] = 0;
    }
    FenceMbarrierInit();
    for (int step = 0; step < 2 && step < loads; ++step) fetch(step);
  }
  // A block of several tiles reads its k-rows' features once, into shared memory.
  if constexpr (P::kTiles > 1) {
    for (int i = threadIdx.x; i < tiles * P::kBlockRows; i += blockDim.x) {
      block_features[i] = shape.feature_rows[block_row0 + i];
    }
  }
  __syncthreads();

  // This thread's k-rows of a tile: row0 + g + 8·half, features x_i·x_j of one step (StepOf)
  // with j = second_factor + half (SecondFactorOffset: adjacent, one 8-byte load for both).
  struct TileRows {
    int row0, first_factor, second_factor;
    int feature[2];
    float weight[2];
  };
  auto rows_of = [&](int tile) {
    TileRows r;
    r.row0 = block_row0 + tile * P::kBlockRows + warp * P::kWarpRows;
    int jb;
    StepOf(r.row0 / 16, r.first_factor, jb);
    r.second_factor = 16 * jb + SecondFactorOffset(g);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = r.row0 + g + 8 * half;
      r.feature[half] = P::kTiles > 1 ? block_features[row - block_row0] : shape.feature_rows[row];
      r.weight[half] = r.feature[half] >= 0 ? shape.key_weights[r.feature[half]] : 0.0f;
    }
    return r;
  };

  // With outputs (long segments) the accumulators hold the state without the key weights (row f
  // holds S_f / w_f), so that the many steps make φ(K)ᵀ's fragments without a multiply by w; a
  // fold's block, one sub-chunk a tile, weights its fragments instead of its state on the way in
  // and out.
  constexpr bool kUnweighted = P::kStoresBefore;

  // The running state of this thread's accumulator elements (StateRows: accumulator column c
  // holds state column StateColumn(c, kRun), column kD holds z, the rest are zero); a tile's state
  // rows are loaded as stored, a tile ahead.
  float acc[M::kNTiles][4];
  static_assert(M::kNTiles == kD / 8 + 1, "S's n-tiles, then z's");
  constexpr int kRun = P::Run(std::is_same_v<Storage, __nv_bfloat16>);
  TileRows now = rows_of(0);
  StateRows<kD, Storage, kRun> stored;
  stored.Load(state, D, now.feature, t4);
  const int64_t head_state = static_cast<int64_t>(M::kRows) * M::kWide;
  int step = 0;  // (tile, sub-chunk) steps so far: their buffers alternate
  for (int tile = 0; tile < tiles; ++tile) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float scale = !kUnweighted || now.feature[half] < 0 ? 1.0f : 1.0f / now.weight[half];
#pragma unroll
      for (int nt = 0; nt < kD / 8; ++nt) {
        const float2 x = stored.Pair(half, nt);
        acc[nt][2 * half] = x.x * scale;
        acc[nt][2 * half + 1] = x.y * scale;
      }
      acc[kD / 8][2 * half] = stored.z[half] * scale;
      acc[kD / 8][2 * half + 1] = 0.0f;
    }
    TileRows next = now;
    if (tile + 1 < tiles) {
      next = rows_of(tile + 1);
      stored.Load(state, D, next.feature, t4);
    }
    // A fold's fragments carry the key weights (for degree 2 they are 1 and 2, so weighting the
    // rounded products is exact).
    const uint32_t weight_pair[2] = {PackBf16(now.weight[0], now.weight[0]),
                                     PackBf16(now.weight[1], now.weight[1])};

    for (int u = first; u < first + sub_chunks; ++u, ++step) {
      const int buffer = resident ? 0 : step % 2;
      MbarrierWait(&buffer_loaded[buffer], resident ? 0 : step / 2 % 2);
      const float chunk_decay = chunk_decays[static_cast<int64_t>(u) * shape.num_kv_heads + h];

      // At a chunk's first sub-chunk, the state before the chunk, for ChunkOutputKernel; then the
      // state decays over the sub-chunk.
      const int64_t c = u / P::kSubChunks;
      __nv_bfloat16* before = !P::kStoresBefore || u % P::kSubChunks != 0
                                  ? nullptr
                                  : before_states + (c * shape.num_kv_heads + h) * head_state;
#pragma unroll
      for (int nt = 0; nt < M::kNTiles; ++nt) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          float* pair = &acc[nt][2 * half];
          if (before != nullptr) {
            // K-major core matrices (StoreValuesKMajor's layout, the k-rows as its tokens), where
            // k-rows r and r + 1 of a column are adjacent: lanes g and g + 1 (g even) swap an
            // element so that each stores one pair, column c (even lane) or c + 1 (odd lane).
            const float x0 = pair[0] * now.weight[half], x1 = pair[1] * now.weight[half];
            const bool odd = g % 2 == 1;
            const float other = __shfl_xor_sync(0xffffffffu, odd ? x0 : x1, 4);
            const int r = now.row0 + (g & ~1) + 8 * half, c = nt * 8 + 2 * t4 + (odd ? 1 : 0);
            const int column = c < kD ? StateColumn(c, kRun) : c;
            *reinterpret_cast<uint32_t*>(before + KMajorOffset<M::kWide>(r, column)) =
                odd ? PackBf16(other, x1) : PackBf16(x0, other);
          }
          pair[0] *= chunk_decay;
          pair[1] *= chunk_decay;
        }
      }

      // acc += φ(K)ᵀ·[decay·v | decay] (without the weights when kUnweighted): A (k-rows ×
      // tokens) made in registers from the key pairs, B the values in shared memory, chains of
      // P::kChainSteps wgmmas of the warpgroup's 64 k-rows by 16 tokens, over the sub-chunk's
      // tokens only (the buffers are zero past them up to kChunk).
      const uint32_t* keys = keys_of(buffer);
      const __nv_bfloat16* values = values_of(buffer);
      constexpr int kChainTokens = 16 * P::kChainSteps;
      static_assert(P::kChunk % kChainTokens == 0);
      const int token_end = RoundUp(max(tokens_of(u), 0), kChainTokens);
#pragma unroll 1
      for (int ks = 0; ks < token_end; ks += kChainTokens) {
        uint32_t a[P::kChainSteps][4];
#pragma unroll
        for (int s = 0; s < P::kChainSteps; ++s) {
#pragma unroll
          for (int hi = 0; hi < 2; ++hi) {  // tokens 2t, 2t+1 (hi 0) or 2t+8, 2t+9 (hi 1)
            const uint32_t* pair = keys + (ks / 2 + 8 * s + t4 + 4 * hi) * M::kKeyPairStride;
            const uint32_t x = pair[now.first_factor];
            const uint2 y = *reinterpret_cast<const uint2*>(pair + now.second_factor);
            uint32_t row_g = MulBf16Pairs(x, y.x), row_g8 = MulBf16Pairs(x, y.y);
            if constexpr (!kUnweighted) {
              row_g = MulBf16Pairs(row_g, weight_pair[0]);
              row_g8 = MulBf16Pairs(row_g8, weight_pair[1]);
            }
            a[s][2 * hi] = row_g;
            a[s][2 * hi + 1] = row_g8;
          }
        }
        WgmmaChainBf16<M::kWide>(acc, a, values + ks * M::kWide);
      }
      if (!resident && LastReader(&buffer_readers[buffer], step / 2, P::kWarps) &&
          step + 2 < loads) {
        fetch(step + 2);
      }
    }

    // The tile's state after the segment's last chunk back to the slot.
    StateRows<kD, Storage, kRun> out;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const float scale = kUnweighted ? now.weight[half] : 1.0f;
#pragma unroll
      for (int nt = 0; nt < kD / 8; ++nt) {
        out.SetPair(half, nt,
                    make_float2(acc[nt][2 * half] * scale, acc[nt][2 * half + 1] * scale));
      }
      out.z[half] = acc[kD / 8][2 * half] * scale;
    }
    out.Store(state, D, now.feature, t4);
    now = next;
  }
}

// grid (query heads, chunks × kParts), kOutputWarps warps: block (head, kParts·c + p) takes part p
// of chunk c, whose query rows [p·kBlockRows + w·kWarpRows, + kWarpRows) warp w owns.
template <int kD>
__global__ void __launch_bounds__(Mma<kD>::kOutputThreads)
    ChunkOutputKernel(PowerAttentionShape shape, AttentionRows rows, const PrefillChunk* chunks,
                      const __nv_bfloat16* before_states, const __nv_bfloat16* keys_values) {
  using M = Mma<kD>;
  static_assert(M::kOutputWarps % 4 == 0, "whole warpgroups: a wgmma covers 64 query rows");
  extern __shared__ float4 shared_storage[];
  float* queries = reinterpret_cast<float*>(shared_storage);    // [kBlockRows × kQueryStride]
  float* log_gate = queries + M::kBlockRows * M::kQueryStride;  // [chunk]
  // kStages × [kStageSteps·16 × kWide]; the keys and values of parts 0 … p take two slots each
  // from kKeysValuesSlot once the state form is done with them.
  auto* stages = reinterpret_cast<__nv_bfloat16*>(log_gate + M::kChunk);
  __nv_bfloat16* keys_values_parts = stages + M::kKeysValuesSlot * M::kStageElements;
  // Per stage slot: the mbarrier its bulk copy completes on, and how many warps have finished
  // reading it (over all its uses); then each part's keys and values' mbarrier.
  auto* stage_loaded = reinterpret_cast<uint64_t*>(stages + M::kStages * M::kStageElements);
  uint64_t* keys_values_loaded = stage_loaded + M::kStages;  // [kParts]
  auto* stage_readers = reinterpret_cast<int*>(keys_values_loaded + M::kParts);

  const int head = blockIdx.x;
  const int kv_head = head / (shape.num_heads / shape.num_kv_heads);
  const int64_t c = blockIdx.y / M::kParts;
  const int part = blockIdx.y % M::kParts;
  const PrefillChunk chunk = chunks[c];
  const int part_row = part * M::kBlockRows;  // the block's first row in the chunk
  const int n = min(M::kBlockRows, chunk.num_rows - part_row);
  if (n <= 0) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  const __nv_bfloat16* before =
      before_states + (c * shape.num_kv_heads + kv_head) * M::kRows * M::kWide;

  // The stages of the state stream in by bulk copies that one thread issues, each completing on
  // its slot's mbarrier: a warp waits only for the stage it multiplies, and the last warp done
  // with a slot refills it, so the warpgroups drift apart instead of meeting at a block barrier
  // every stage (where all of them made fragments at once while the tensor cores idled). Measured
  // on an H200 (bench/results/session25.md): a layer's prefill 1.2% faster at d 64, 6.5-9% at
  // d 128.
  constexpr int kStageCount = M::kStageCount;
  constexpr uint32_t kStageBytes = M::kStageElements * sizeof(__nv_bfloat16);
  auto fetch_stage = [&](int stage) {
    const int slot = stage % M::kStages;
    MbarrierArriveExpecting(&stage_loaded[slot], kStageBytes);
    BulkCopyToShared(stages + slot * M::kStageElements,
                     before + static_cast<int64_t>(stage) * M::kStageElements, kStageBytes,
                     &stage_loaded[slot]);
  };
  if (threadIdx.x == 0) {
    for (int slot = 0; slot < M::kStages; ++slot) {
      MbarrierInit(&stage_loaded[slot], 1);
      stage_readers[slot] = 0;
    }
    for (int q = 0; q < M::kParts; ++q) MbarrierInit(&keys_values_loaded[q], 1);
    FenceMbarrierInit();
    for (int stage = 0; stage < M::kStages; ++stage) fetch_stage(stage);
  }
  // The queries stream in while the log gates load.
  CopyRowsAsync<kD, M::kBlockRows>(rows.q, shape.num_heads, head, chunk.first_row + part_row, n,
                                   queries, M::kQueryStride);
  CpAsyncCommit();
  if (threadIdx.x < 32) {
    ChunkLogGates<M::kChunk>(rows.log_gate, shape.num_kv_heads, kv_head, chunk.first_row,
                             chunk.num_rows, log_gate);
  }
  CpAsyncWait<0>();
  __syncthreads();

  // This thread's query rows: warp base + g + 8·half (in the block; part_row + that in the chunk).
  const int warp_row = warp * M::kWarpRows;
  float row_gate[2], query_scale[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = warp_row + g + 8 * half;
    row_gate[half] = log_gate[part_row + r];
    query_scale[half] = r < n ? shape.scale_pow * expf(log_gate[part_row + r]) : 0.0f;
  }

  float acc[M::kNTiles][4];
#pragma unroll
  for (int nt = 0; nt < M::kNTiles; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[nt][e] = 0.0f;
  }

  // State form. x_j of the current column block stay in registers as bf16 pairs: half → columns
  // 16·jb + 4t, + 2 (the A fragment's k-columns 2t, 2t + 1) and 16·jb + 4t + 1, + 3 (k-columns
  // 2t + 8, 2t + 9) (SecondFactorOffset); a step's values are the scaled x_i times each pair. A
  // chain's kChainSteps steps take consecutive i of one column block (a block is 16·(jb + 1)
  // steps), so the block changes only between chains and the chain's x_i are one load.
  static_assert(kChainSteps == 4 && 16 % kChainSteps == 0, "a chain's x_i: one float4");
  uint32_t second[2][2];
  int i = 0, jb = -1;
  for (int stage = 0; stage < kStageCount; ++stage) {
    const int slot = stage % M::kStages, use = stage / M::kStages;
    MbarrierWait(&stage_loaded[slot], use % 2);
    const __nv_bfloat16* tile = stages + slot * M::kStageElements;
    static_assert(M::kStageSteps % kChainSteps == 0);
#pragma unroll 1
    for (int s = 0; s < M::kStageSteps; s += kChainSteps) {
      if (jb < 0 || i == 16 * (jb + 1)) {
        i = 0;
        ++jb;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const float* q = queries + (warp_row + g + 8 * half) * M::kQueryStride;
          const float4 x = *reinterpret_cast<const float4*>(q + 16 * jb + 4 * t4);
          second[half][0] = PackBf16(x.x, x.z);
          second[half][1] = PackBf16(x.y, x.w);
        }
      }
      float firsts[2][kChainSteps];
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const float4 x = *reinterpret_cast<const float4*>(
            queries + (warp_row + g + 8 * half) * M::kQueryStride + i);
        firsts[half][0] = x.x;
        firsts[half][1] = x.y;
        firsts[half][2] = x.z;
        firsts[half][3] = x.w;
      }
      uint32_t a[kChainSteps][4];
#pragma unroll
      for (int step = 0; step < kChainSteps; ++step) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const float first = query_scale[half] * firsts[half][step];
          const uint32_t first_pair = PackBf16(first, first);
          a[step][half] = MulBf16Pairs(first_pair, second[half][0]);
          a[step][2 + half] = MulBf16Pairs(first_pair, second[half][1]);
        }
      }
      i += kChainSteps;
      WgmmaChainBf16<M::kWide>(acc, a, tile + s * 16 * M::kWide);
    }
    // This warp's wgmmas have read the slot (waited for); the last warp to get here refills it,
    // or, once a part's two slots are done with, copies that part's keys and values in
    // (ChunkValuesKernel stored them as the attention form reads them; parts past the block's
    // are not needed), so that they land during the last stages.
    if (LastReader(&stage_readers[slot], use, M::kOutputWarps)) {
      // Past the last fetch, every second stage frees a part's two slots.
      const int past_fetches = stage - (kStageCount - M::kStages + 1);
      const int freed_part = past_fetches / 2;
      if (stage + M::kStages < kStageCount) {
        fetch_stage(stage + M::kStages);
      } else if (past_fetches % 2 == 0 && freed_part <= part) {
        constexpr uint32_t kBytes = M::kPartElements * sizeof(__nv_bfloat16);
        MbarrierArriveExpecting(&keys_values_loaded[freed_part], kBytes);
        BulkCopyToShared(keys_values_parts + freed_part * 2 * M::kStageElements,
                         keys_values + (c * shape.num_kv_heads + kv_head) * M::kKeysValuesElements +
                             freed_part * M::kPartElements,
                         kBytes, &keys_values_loaded[freed_part]);
      }
    }
  }

  // Attention form inside the chunk, a warpgroup's 64 rows at a time against key blocks of 64 up
  // to its last row, on wgmma: scores S = Q·Kᵀ (A = the queries' fragments, B = the block's keys),
  // then acc += P·V (A = the weights made from S's accumulators, which hold them as mma.sync's A
  // fragments do, B = the block's values). Against mma.sync on 16 keys a warp, measured on an H200
  // (bench/results/session26.md): a layer's prefill 9% faster at d 64, level at d 128.
  uint32_t query_frag[kD / 16][4];
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = warp_row + g + 8 * (e & 1), col = 16 * kk + 2 * t4 + 8 * (e >> 1);
      const float2 x = *reinterpret_cast<const float2*>(queries + r * M::kQueryStride + col);
      query_frag[kk][e] = PackBf16(x.x, x.y);
    }
  }
  const int group = warp / 4;
  // The same in the warpgroup's warps: every key block of the parts before, then those of its
  // own part up to its rows; none where all its rows are past the chunk's.
  constexpr int kPartBlocks = M::kBlockRows / 64;
  const int key_blocks = 64 * group < n ? part * kPartBlocks + min(group + 1, (n + 63) / 64) : 0;
#pragma unroll 1
  for (int kb = 0; kb < key_blocks; ++kb) {
    const int key_part = kb / kPartBlocks, in_part = kb % kPartBlocks;
    if (in_part == 0) MbarrierWait(&keys_values_loaded[key_part], 0);
    const __nv_bfloat16* part_keys = keys_values_parts + key_part * 2 * M::kStageElements;
    const __nv_bfloat16* keys = part_keys + in_part * 64 * kD;
    const __nv_bfloat16* values = part_keys + M::kBlockRows * kD + in_part * 64 * M::kWide;
    float scores[8][4] = {};
    WgmmaChainBf16<64>(scores, query_frag, keys);
    // Every weight is made, then the causal mask of the block that reaches the warpgroup's rows
    // picks (no branch a weight); rows past the chunk's are never stored.
    const bool reaches_rows = kb == part * kPartBlocks + group;
    uint32_t a[4][4];
#pragma unroll
    for (int step = 0; step < 4; ++step) {  // keys 16·step … of the block: n-tiles 2·step, + 1
      float p[2][4];
#pragma unroll
      for (int half_step = 0; half_step < 2; ++half_step) {
        const int nt = 2 * step + half_step;
        const float2 key_gate =
            *reinterpret_cast<const float2*>(log_gate + kb * 64 + nt * 8 + 2 * t4);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = part_row + warp_row + g + 8 * (e >> 1);  // in the chunk, as s
          const int s = kb * 64 + nt * 8 + 2 * t4 + (e & 1);
          const float x = shape.scale * scores[nt][e];
          const float weight =
              x * x * expf(row_gate[e >> 1] - ((e & 1) == 0 ? key_gate.x : key_gate.y));
          p[half_step][e] = reaches_rows && s > r ? 0.0f : weight;
        }
      }
      a[step][0] = PackBf16(p[0][0], p[0][1]);
      a[step][1] = PackBf16(p[0][2], p[0][3]);
      a[step][2] = PackBf16(p[1][0], p[1][1]);
      a[step][3] = PackBf16(p[1][2], p[1][3]);
    }
    WgmmaChainBf16<M::kWide>(acc, a, values);
  }

  // out = numerator / (denominator + ε); the denominator is column kD, held by lane 4g.
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const float denominator =
        __shfl_sync(0xffffffffu, acc[kD / 8][2 * half], lane & ~3) + kNormalizerEpsilon;
    const int r = warp_row + g + 8 * half;
    if (r >= n) continue;
    float* out = rows.out + ((chunk.first_row + part_row + r) * shape.num_heads + head) * kD;
#pragma unroll
    for (int nt = 0; nt < kD / 8; ++nt) {
      *reinterpret_cast<float2*>(out + nt * 8 + 2 * t4) =
          make_float2(acc[nt][2 * half] / denominator, acc[nt][2 * half + 1] / denominator);
    }
  }
}

template <int kD>
size_t OutputShared() {
  using M = Mma<kD>;
  return sizeof(float) * (M::kBlockRows * M::kQueryStride + M::kChunk) +
         sizeof(__nv_bfloat16) * M::kStages * M::kStageElements +
         (sizeof(uint64_t) + sizeof(int)) * M::kStages + sizeof(uint64_t) * M::kParts;
}

// A pass's workspace, in this order: with outputs only, the state before every chunk and every
// chunk's keys and values (bf16); every sub-chunk's decayed values (bf16), its key pairs (words),
// its decay (float). Each part's size is a multiple of 16 bytes but the last, so every part is as
// aligned as the workspace.
template <int kD, typename P>
struct PassWorkspace {
  static int64_t BeforeFloats(int kv_heads, int64_t chunks, bool with_outputs) {
    return with_outputs ? chunks * kv_heads * Mma<kD>::kRows * Mma<kD>::kWide / 2 : 0;
  }
  static int64_t KeysValuesFloats(int kv_heads, int64_t chunks, bool with_outputs) {
    return with_outputs ? chunks * kv_heads * Mma<kD>::kKeysValuesElements / 2 : 0;
  }
  static int64_t SubChunks(int kv_heads, int64_t chunks) {
    return chunks * P::kSubChunks * kv_heads;
  }
  static int64_t Floats(int kv_heads, int64_t chunks, bool with_outputs) {
    return BeforeFloats(kv_heads, chunks, with_outputs) +
           KeysValuesFloats(kv_heads, chunks, with_outputs) +
           SubChunks(kv_heads, chunks) * (P::kValuesElements / 2 + P::kKeyPairWords + 1);
  }
  static_assert(Mma<kD>::kRows * Mma<kD>::kWide % 8 == 0 && Mma<kD>::kKeysValuesElements % 8 == 0 &&
                P::kValuesElements % 8 == 0 && P::kKeyPairWords % 4 == 0);

  PassWorkspace(float* workspace, int kv_heads, int64_t chunks, bool with_outputs) {
    const int64_t sub_chunks = SubChunks(kv_heads, chunks);
    before_states = reinterpret_cast<__nv_bfloat16*>(workspace);
    float* next = workspace + BeforeFloats(kv_heads, chunks, with_outputs);
    keys_values = reinterpret_cast<__nv_bfloat16*>(next);
    next += KeysValuesFloats(kv_heads, chunks, with_outputs);
    decayed_values = reinterpret_cast<__nv_bfloat16*>(next);
    next += sub_chunks * P::kValuesElements / 2;
    key_pairs = reinterpret_cast<uint32_t*>(next);
    chunk_decays = next + sub_chunks * P::kKeyPairWords;
  }
  __nv_bfloat16* before_states;
  __nv_bfloat16* keys_values;
  __nv_bfloat16* decayed_values;
  uint32_t* key_pairs;
  float* chunk_decays;
};

// Tiles a block of the states pass walks for `pairs` (segment, kv head) pairs: up to P::kTiles,
// fewer where the blocks would not fill the GPU about twice over (a fold of one session: a tile a
// block).
template <typename P>
int TilesPerBlock(int64_t pairs) {
  const int64_t wanted_blocks = 2 * int64_t{P::kMinBlocks} * MultiprocessorCount();
  const int64_t fewest_blocks = (P::kRowTiles + P::kTiles - 1) / P::kTiles;
  const int64_t blocks =
      std::clamp<int64_t>((wanted_blocks + pairs - 1) / pairs, fewest_blocks, P::kRowTiles);
  return static_cast<int>((P::kRowTiles + blocks - 1) / blocks);
}

// The chunks' decayed values and key pairs, and the states' pass over them.
template <int kD, typename P>
void LaunchStates(const PowerAttentionShape& shape, const AttentionRows& rows,
                  const PrefillSegment* segments, int64_t segment_count, const PrefillChunk* chunks,
                  int64_t chunk_count, const PassWorkspace<kD, P>& work, cudaStream_t stream) {
  ChunkValuesKernel<kD, P>
      <<<dim3(static_cast<unsigned>(chunk_count * P::kSubChunks), shape.num_kv_heads), 256, 0,
         stream>>>(shape, rows, chunks, work.decayed_values, work.key_pairs, work.chunk_decays,
                   work.keys_values);
  const int tiles_per_block = TilesPerBlock<P>(shape.num_kv_heads * segment_count);
  const dim3 grid((P::kRowTiles + tiles_per_block - 1) / tiles_per_block, shape.num_kv_heads,
                  static_cast<unsigned>(segment_count));
  auto launch = [&](auto kernel) {
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(P::kSharedBytes));
    kernel<<<grid, P::kWarps * 32, P::kSharedBytes, stream>>>(
        shape, rows, segments, chunks, work.decayed_values, work.key_pairs, work.chunk_decays,
        tiles_per_block, work.before_states);
  };
  if (shape.bf16_states) {
    launch(ChunkStatesKernel<kD, P, __nv_bfloat16>);
  } else {
    launch(ChunkStatesKernel<kD, P, float>);
  }
}

template <int kD>
void Launch(const PowerAttentionShape& shape, const AttentionRows& rows,
            const PrefillSegment* segments, int64_t segment_count, const PrefillChunk* chunks,
            int64_t chunk_count, float* workspace, cudaStream_t stream) {
  using M = Mma<kD>;
  if (rows.out == nullptr) {
    using P = FoldStatesPass<kD>;
    return LaunchStates<kD, P>(
        shape, rows, segments, segment_count, chunks, chunk_count,
        PassWorkspace<kD, P>(workspace, shape.num_kv_heads, chunk_count, false), stream);
  }
  using P = OutputStatesPass<kD>;
  const PassWorkspace<kD, P> work(workspace, shape.num_kv_heads, chunk_count, true);
  LaunchStates<kD, P>(shape, rows, segments, segment_count, chunks, chunk_count, work, stream);

  const size_t output_shared = OutputShared<kD>();
  cudaFuncSetAttribute(ChunkOutputKernel<kD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       static_cast<int>(output_shared));
  const dim3 output_grid(shape.num_heads, static_cast<unsigned>(chunk_count * M::kParts));
  ChunkOutputKernel<kD><<<output_grid, M::kOutputThreads, output_shared, stream>>>(
      shape, rows, chunks, work.before_states, work.keys_values);
}

}  // namespace

bool UsesTensorCorePrefill(int head_dim, int degree) {
  return degree == 2 && (head_dim == 64 || head_dim == 128);
}

int TensorCorePrefillChunkTokens(int head_dim, bool with_outputs) {
  if (with_outputs) return head_dim == 64 ? Mma<64>::kChunk : Mma<128>::kChunk;
  return head_dim == 64 ? FoldStatesPass<64>::kPlanChunk : FoldStatesPass<128>::kPlanChunk;
}

int64_t TensorCorePrefillWorkspaceFloats(int head_dim, int kv_heads, int64_t chunks,
                                         bool with_outputs) {
  if (head_dim == 64) {
    return with_outputs ? PassWorkspace<64, OutputStatesPass<64>>::Floats(kv_heads, chunks, true)
                        : PassWorkspace<64, FoldStatesPass<64>>::Floats(kv_heads, chunks, false);
  }
  return with_outputs ? PassWorkspace<128, OutputStatesPass<128>>::Floats(kv_heads, chunks, true)
                      : PassWorkspace<128, FoldStatesPass<128>>::Floats(kv_heads, chunks, false);
}

std::vector<int32_t> TensorCoreFeatureRows(const std::vector<uint8_t>& monomials, int head_dim) {
  // Feature index of each (i, j), i ≤ j, from the expansion's own order.
  std::vector<int32_t> index(static_cast<size_t>(head_dim) * head_dim, -1);
  for (size_t f = 0; 2 * f < monomials.size(); ++f) {
    index[monomials[2 * f] * head_dim + monomials[2 * f + 1]] = static_cast<int32_t>(f);
  }
  std::vector<int32_t> rows;
  for (int jb = 0; jb < head_dim / 16; ++jb) {
    for (int i = 0; i < 16 * (jb + 1); ++i) {
      for (int r = 0; r < 16; ++r) {
        const int j = 16 * jb + SecondFactorOffset(r);
        rows.push_back(j >= i ? index[i * head_dim + j] : -1);
      }
    }
  }
  return rows;
}

void TensorCorePrefill(const PowerAttentionShape& shape, const AttentionRows& rows,
                       const PrefillSegment* segments, int64_t segment_count,
                       const PrefillChunk* chunks, int64_t chunk_count, float* workspace,
                       cudaStream_t stream) {
  if (shape.head_dim == 64) {
    Launch<64>(shape, rows, segments, segment_count, chunks, chunk_count, workspace, stream);
  } else {
    Launch<128>(shape, rows, segments, segment_count, chunks, chunk_count, workspace, stream);
  }
}

}  // namespace sympow::kernels
