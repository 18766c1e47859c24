// The decode stream kernel on tensor cores (StreamStatesMma, launched by LaunchStreamStatesMma from
// kernels/power_decode.cu's PowerDecode): states at head_dim 64 or 128, degree 2, in bf16 or, where
// queries are grouped, in fp32 (their products through kernels/decode_mma_operands.cuh).
#pragma once

#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/decode_common.cuh"
#include "kernels/decode_fold.cuh"
#include "kernels/decode_items.cuh"
#include "kernels/decode_mma_operands.cuh"
#include "kernels/grid.cuh"
#include "kernels/mma_bf16.cuh"
#include "kernels/power_attention.h"

namespace sympow::kernels {

// Blocks of StreamStatesMma an SM holds (a warp's accumulators are 64 columns at any head size):
// five fit 48 registers a thread with one n-tile of query heads, four with two; two when the
// launch folds (with three at 80 registers the accumulators of the advanced rows spill); two of
// fp32 state (64 KB of staging a block; at three, 80 registers spilled and a step of the 14B shape
// took 6-7% longer at 16-87 sessions, 11% less at one, bench/results/decode_session20.md).
constexpr int MmaBlocksPerSM(int head_tiles, bool folds, int element_bytes) {
  return folds || element_bytes == 4 ? 2 : (head_tiles == 1 ? 5 : 4);
}

// StreamStatesMma: each warp streams its own blocks of 16 rows of (at most) 64 columns through a
// double buffer; through three buffers when it folds, with fewer blocks an SM (MmaBlocksPerSM) to
// keep as many rows in flight.
constexpr int kMmaWarps = kThreads / 32;
__host__ __device__ constexpr int MmaStages(bool folds) { return folds ? 3 : 2; }
__host__ __device__ constexpr int MmaColumns(int head_dim) { return head_dim < 64 ? head_dim : 64; }
// Warps that share each block of state rows, one a column part: two at head_dim 128.
__host__ __device__ constexpr int MmaColumnParts(int head_dim) {
  return head_dim / MmaColumns(head_dim);
}
__host__ __device__ constexpr size_t MmaStagingBytes(int head_dim, bool folds, int element_bytes) {
  return size_t{kMmaWarps} * MmaStages(folds) * 16 * MmaColumns(head_dim) * element_bytes;
}
// StreamStatesMma's rows of q in shared memory are 8 floats apart beyond the head, so that lanes
// making φ(q) of four query heads at once read four distinct sets of banks (Nsight Compute counted
// a third of the kernel's shared-memory wavefronts as excess at the 14B shape; the padding was
// measured only together with kSplitPhi, bench/results/decode_session19.md).
__host__ __device__ constexpr int MmaQueryStride(int head_dim) { return head_dim + 8; }
// Where two warps share a row block (MmaColumnParts 2, one warp a column half), they may split the
// making of φ(q) (kSplitPhi): each makes half of the B fragments and takes the other half from its
// partner, per warp two slots (alternate row blocks) of a pair's B words (`pair_words`) per lane
// and n-tile. That saved 11% of a step of bf16 states at 64 and 175 sessions of the 14B shape,
// where each warp walks over a hundred row blocks, but lost 13% at one session (two row blocks a
// warp) and nothing at 16 (about 31): blocks of kSplitPhiRows rows or more split
// (bench/results/decode_session19.md). fp32 states split alike (with the cheaper TF32 parts,
// 64 sessions of the 14B shape took 16% less, bench/results/decode_session20.md).
constexpr int64_t kSplitPhiRows = 4096;
__host__ __device__ constexpr int MmaExchangeWords(bool split_phi, int head_tiles, int pair_words) {
  return split_phi ? kMmaWarps * 2 * 32 * head_tiles * pair_words : 0;
}

__device__ inline void CpAsync16OrZeros(void* shared, const void* global, bool copy) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SharedAddress(shared)),
               "l"(global), "r"(copy ? 16 : 0));
}

// n-tiles of StreamStatesMma's B: each takes 4 query heads (two columns each).
__host__ __device__ constexpr int HeadTiles(int group) { return (group + 3) / 4; }

// A block's item of state at head_dim 64 or 128, degree 2, on tensor cores, the product taken
// transposed: numeratorsᵀ = Sᵀ·φ(q) (kernels/decode_mma_operands.cuh: bf16 states as mma
// m16n8k16, fp32 ones as 3xTF32 m16n8k8). B holds φ(q) of four query heads a n-tile, each head as
// two columns, its high and low parts: one MMA per 16 columns thus takes both parts of four heads,
// where φ(q) as A (one row of 16 used without GQA, a second MMA for the low part) took four times
// as many. Each warp streams its own blocks of 16 rows through a double buffer, XOR-swizzled by
// row; rows past the tile land as zeros. A warp takes 64 columns of its rows: at head_dim 128
// warps 2r and 2r + 1 split row blocks r, r + 4, … by columns, so that a warp's accumulators (and
// the blocks an SM holds) are those of head_dim 64. Lane (g, t) makes the four φ(q) values of its
// B fragments (features 2t, 2t + 1, 2t + 8, 2t + 9 of a block; query head g / 2 of each n-tile,
// part g % 2) itself, block by block (their factors and z fetched a block ahead), and adds φ(q)·z
// to its head's denominator: no tile-wide φ pass before the stream. With kSplitPhi the two warps
// of a row block make two values each (features 2t + 8·part, + 1) and exchange them
// (MmaExchangeWords). With kFolds (bf16), an item whose buffer fills with this step's token also
// writes its rows back advanced over the buffer (kernels/decode_fold.cuh).
template <typename Operands, int kHeadDim, int kHeadTiles, bool kFolds, bool kSplitPhi>
__device__ void StreamItemMma(const PowerAttentionShape& shape, const float* q_rows,
                              const Item& item, const DecodeScratch& scratch,
                              const FoldArgs& fold_args) {
  using Element = typename Operands::Element;
  static_assert(Operands::kFoldsInStep || !kFolds, "these states fold after the step");
  constexpr int kColumns = MmaColumns(kHeadDim);
  static_assert(kColumns == 64, "Operands multiply blocks of 64 columns");
  constexpr int kParts = MmaColumnParts(kHeadDim);
  constexpr int kRowWarps = kMmaWarps / kParts;
  constexpr int kChunkElements = 16 / sizeof(Element);
  constexpr int kChunks = kColumns / kChunkElements;  // 16-byte chunks per staged row
  constexpr int kStageElements = 16 * kColumns;
  constexpr int kMmaStages = MmaStages(kFolds);
  extern __shared__ __align__(16) float shared[];
  const int group = shape.num_heads / shape.num_kv_heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int part = warp % kParts, row_warp = warp / kParts;
  constexpr int kQueryStride = MmaQueryStride(kHeadDim);
  // Two warps of a row block split the making of φ(q): this one makes the features of pair `part`.
  static_assert(!kSplitPhi || kParts == 2, "only warps that share row blocks split φ(q)");
  constexpr int kOwnPairs = kSplitPhi ? 1 : 2;
  Element* staging = reinterpret_cast<Element*>(shared) + warp * kMmaStages * kStageElements;
  auto* exchange = reinterpret_cast<uint32_t*>(
      shared + MmaStagingBytes(kHeadDim, kFolds, sizeof(Element)) / sizeof(float));
  // B words of one feature pair: pair p's are b[p + 2w] (PackPhi).
  constexpr int kPairWords = Operands::kPairWords;
  float* q =
      reinterpret_cast<float*>(exchange + MmaExchangeWords(kSplitPhi, kHeadTiles, kPairWords));
  float* sums = q + group * kQueryStride;  // [group × d]
  const FoldTokens fold_tokens(sums + group * kHeadDim, kHeadDim);

  Element* S = static_cast<Element*>(item.state) + part * kColumns;
  Element* z_values = static_cast<Element*>(item.state) + int64_t{shape.expanded_dim} * kHeadDim;
  const int row_blocks = (item.tile + 15) / 16;
  const int mine = row_warp < row_blocks ? (row_blocks - row_warp + kRowWarps - 1) / kRowWarps : 0;
  auto fetch = [&](int i) {  // this warp's i-th block of 16 rows
    if (i < mine) {
      const int first = (row_warp + i * kRowWarps) * 16;
      Element* stage = staging + (i % kMmaStages) * kStageElements;
#pragma unroll
      for (int c = lane; c < 16 * kChunks; c += 32) {
        const int row = c / kChunks, chunk = c % kChunks;
        const bool inside = first + row < item.tile;
        CpAsync16OrZeros(
            stage + row * kColumns + Operands::Chunk(row, chunk) * kChunkElements,
            S + static_cast<int64_t>(item.first_feature + (inside ? first + row : 0)) * kHeadDim +
                chunk * kChunkElements,
            inside);
      }
    }
    CpAsyncCommit();
  };
  for (int i = 0; i < kMmaStages - 1; ++i) fetch(i);

  // This lane's features in a block starting at `first`: first + 2t + {0, 1} (pair 0) and
  // + {8, 9} (pair 1), for query head 4j + g / 2 of n-tile j (lanes with 2·group ≤ g have none).
  // Their factors (two bytes each, adjacent features adjacent) and z values arrive a block ahead.
  const int g = lane / 4, t = lane % 4;
  const bool low = g % 2 == 1;
  const bool has_head = g / 2 < group;
  // Lanes whose φ values go into the denominators: each part's own pair where φ(q) is split, else
  // part 0's (both pairs); high parts only.
  const bool adds_denominator = (kSplitPhi || part == 0) && !low;
  const auto* monomials = reinterpret_cast<const uint32_t*>(shape.monomials);
  const auto* z = reinterpret_cast<const typename Operands::ZPair*>(z_values);
  struct Factors {
    uint32_t monomials[kOwnPairs];  // two features' factor pairs per word
    typename Operands::ZPair z[kOwnPairs];
  };
  // The feature pair (0: 2t, 2t + 1; 1: 2t + 8, 2t + 9) of this lane's own pair `own`.
  auto pair_of = [&](int own) { return kSplitPhi ? part : own; };
  auto factors_of = [&](int i) {
    Factors f{};
    if (i < mine && has_head) {
      const int first = item.first_feature + (row_warp + i * kRowWarps) * 16 + 2 * t;
#pragma unroll
      for (int own = 0; own < kOwnPairs; ++own) {
        // Features past D read the table's and z's last pair instead; their φ is zeroed below.
        const int feature = min(first + 8 * pair_of(own), shape.expanded_dim - 2);
        f.monomials[own] = monomials[feature / 2];
        f.z[own] = z[feature / 2];
      }
    }
    return f;
  };
  Factors next = factors_of(0);

  WaitForPrimary();
  // A folding item's rows g and g + 8 of each block: their factors and z, a block ahead.
  const bool folds =
      kFolds && LoadFoldTokens(shape, fold_args, item.decode, item.kv_head, fold_tokens);
  auto fold_factors_of = [&](int i) {
    return folds && i < mine
               ? FoldFactorsOf(shape, item.first_feature + (row_warp + i * kRowWarps) * 16 + g)
               : 0u;
  };
  uint32_t fold_next = fold_factors_of(0);
  LoadQueriesClearSums(item, q_rows, kHeadDim, group, kQueryStride, q, sums);

  float acc[kHeadTiles][4][4] = {};
  float denominator[kHeadTiles] = {};
  for (int i = 0; i < mine; ++i) {
    const Factors now = next;
    next = factors_of(i + 1);
    const uint32_t fold_now = fold_next;
    if (folds) fold_next = fold_factors_of(i + 1);
    fetch(i + kMmaStages - 1);
    const int first = (row_warp + i * kRowWarps) * 16;
    uint32_t b[kHeadTiles][Operands::kPhiWords] = {};
#pragma unroll
    for (int j = 0; j < kHeadTiles; ++j) {
      const int head = 4 * j + g / 2;
      if (head < group) {
        const float* q_head = q + head * kQueryStride;
#pragma unroll
        for (int own = 0; own < kOwnPairs; ++own) {
          const uint32_t m = now.monomials[own];
          const float2 z_pair = WidenPair(now.z[own]);
          float phi[2];
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int feature = first + 2 * t + 8 * pair_of(own) + e;  // in the tile
            const uint32_t factors = m >> (16 * e);
            const float x = q_head[factors & 0xff] * q_head[(factors >> 8) & 0xff];
            phi[e] = feature < item.tile ? x : 0.0f;
          }
          if (adds_denominator) denominator[j] += phi[0] * z_pair.x + phi[1] * z_pair.y;
          Operands::PackPhi(phi[0], phi[1], kSplitPhi ? 0 : own, low, b[j]);
        }
      }
    }
    if constexpr (kSplitPhi) {
      // This warp's pair was packed as pair 0 (b[j][2w]); the partner's arrives through its slot
      // for block i.
      uint32_t* slots = exchange + (row_warp * 2 + i % 2) * 2 * 32 * kHeadTiles * kPairWords;
      auto slot = [&](int owner, int j, int w) -> uint32_t& {
        return slots[((owner * kHeadTiles + j) * kPairWords + w) * 32 + lane];
      };
#pragma unroll
      for (int j = 0; j < kHeadTiles; ++j) {
#pragma unroll
        for (int w = 0; w < kPairWords; ++w) slot(part, j, w) = b[j][2 * w];
      }
      PairBarrier(row_warp);
#pragma unroll
      for (int j = 0; j < kHeadTiles; ++j) {
#pragma unroll
        for (int w = 0; w < kPairWords; ++w) {
          const uint32_t own_word = b[j][2 * w];
          const uint32_t theirs = slot(1 - part, j, w);
          b[j][2 * w] = part == 0 ? own_word : theirs;
          b[j][2 * w + 1] = part == 0 ? theirs : own_word;
        }
      }
    }
    CpAsyncWait<kMmaStages - 1>();  // block i has landed, for this lane; the other lanes' after:
    __syncwarp();
    Element* stage = staging + (i % kMmaStages) * kStageElements;
    Operands::Multiply(acc, stage, lane, b);
    if constexpr (kFolds) {
      if (folds) {
        const int64_t feature = item.first_feature + first;
        FoldRows<kHeadDim, kColumns>(fold_tokens, (shape.buffer_tokens + 15) / 16 * 8, fold_now,
                                     stage, part * kColumns, item.tile - first, part == 0,
                                     S + feature * kHeadDim, z_values + feature);
      }
    }
    __syncwarp();  // the block is read before fetch(i + kMmaStages) lands on it
  }
  CpAsyncWait<0>();
#pragma unroll
  for (int j = 0; j < kHeadTiles; ++j) {
    // The four lanes t of a (head, part) hold parts of the head's denominator.
    float total = denominator[j];
    total += __shfl_xor_sync(0xffffffffu, total, 1);
    total += __shfl_xor_sync(0xffffffffu, total, 2);
    const int head = 4 * j + g / 2;
    if (head < group && adds_denominator && t == 0 && mine > 0) {
      atomicAdd(&scratch.denominators[item.head + head], total);
    }
    // Accumulator columns 2t and 2t + 1: both parts of query head 4j + t, for accumulator rows g
    // and g + 8 of each m-tile.
    if (4 * j + t < group) {
      float* head_sums = &sums[(4 * j + t) * kHeadDim + part * kColumns];
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        atomicAdd(&head_sums[Operands::Column(mt, 0, g)], acc[j][mt][0] + acc[j][mt][1]);
        atomicAdd(&head_sums[Operands::Column(mt, 1, g)], acc[j][mt][2] + acc[j][mt][3]);
      }
    }
  }
  __syncthreads();
  AddNumerators(shape, item, sums, scratch);
}

// grid (blocks): states on tensor cores (StreamItemMma). Each pair's rows of S are laid end
// to end, a pair taking pair_rows (≥ D; rows past D are none), and cut into spans of
// rows_per_block, a block each, which it takes as the items of the pairs its span crosses. Tiles
// of whole pairs are pair_rows = tiles × rows_per_block; even spans of one wave, pair_rows = D.
// kFolds: items whose buffers fill fold them (StreamItemMma).
template <typename Operands, int kHeadDim, int kHeadTiles, bool kFolds, bool kSplitPhi>
__global__ void __launch_bounds__(kThreads, MmaBlocksPerSM(kHeadTiles, kFolds,
                                                           sizeof(typename Operands::Element)))
    StreamStatesMma(PowerAttentionShape shape, const float* q_rows, const DecodeRow* decode_rows,
                    int64_t state_offset, int64_t pairs, int64_t pair_rows, int64_t rows_per_block,
                    DecodeScratch scratch, FoldArgs fold_args) {
  AllowDependentsToStart();
  const int64_t start = blockIdx.x * rows_per_block;
  const int64_t end = min(pairs * pair_rows, start + rows_per_block);
  for (int64_t row = start; row < end;) {
    const int64_t pair = row / pair_rows;
    const int first = static_cast<int>(row - pair * pair_rows);
    const int stop = static_cast<int>(min(pair_rows, end - pair * pair_rows));
    const int tile = min(stop, shape.expanded_dim) - first;
    if (tile > 0) {
      if (row > start) __syncthreads();  // the sums of the item before are added
      StreamItemMma<Operands, kHeadDim, kHeadTiles, kFolds, kSplitPhi>(
          shape, q_rows,
          PairItem<typename Operands::Element>(shape, decode_rows, state_offset, pair, first, tile),
          scratch, fold_args);
    }
    row = pair * pair_rows + stop;
  }
}

// The tensor-core path at one head size. For fp32 states (two blocks an SM, ~120 registers a
// thread) whose step finishes with a block an item (`finish_blocks`, FinishHeads, 96 registers),
// where these are at most a third of the blocks the GPU holds at once, their slots are left free
// and the stream's blocks are one wave with equal spans of rows (a multiple of 16, at least
// kMinTileFeatures): the finish blocks start at once beside them and attend over their buffers
// while the states stream (one session of the 14B shape: 1,294 -> 1,002-1,052 µs a step). Beside
// bf16 blocks (four or five an SM) FinishHeads fits only bounded to 64 registers, which lost 16-30%
// at 16 and 64 sessions of the 14B shape (bench/results/decode_session21.md). Otherwise, at
// head_dim 64, tiles of whole pairs (PlanTiles) in waves, the last part empty, so that FinishHeads
// starts on SMs its blocks leave; at 128 one wave of equal spans, where they were 7-13% faster at
// 16-175 sessions of the 14B shape and 3-5% slower at 64-256 of the 124M one
// (bench/results/decode_session15.md). No φ is kept in shared memory, so a span is as long as it
// needs to be. A launch that folds (`fold_args` given, states whose Operands fold in the step) is
// an instance of its own; other states ignore `fold_args`.
template <typename Operands, int kHeadDim>
void LaunchStreamStatesMma(cudaStream_t stream, const PowerAttentionShape& shape, const float* q,
                           const DecodeRow* decode_rows, int64_t count, int64_t state_offset,
                           DecodeScratch scratch, const FoldArgs* fold_args,
                           int64_t finish_blocks) {
  const int group = shape.num_heads / shape.num_kv_heads;
  const int64_t pairs = count * shape.num_kv_heads;
  constexpr int kElementBytes = sizeof(typename Operands::Element);
  constexpr bool kFoldsInStep = Operands::kFoldsInStep;
  const bool folds = kFoldsInStep && fold_args != nullptr;
  const int64_t all_slots =
      int64_t{MultiprocessorCount()} * MmaBlocksPerSM(HeadTiles(group), folds, kElementBytes);
  const bool finish_beside =
      kElementBytes == 4 && finish_blocks > 0 && 3 * finish_blocks <= all_slots;
  const int64_t slots = finish_beside ? all_slots - finish_blocks : all_slots;
  int64_t pair_rows = shape.expanded_dim, rows_per_block = 0;
  if (kHeadDim == 64 && !finish_beside) {
    // A folding item also reads its buffer (keys and values in fp32) before it can start, so its
    // tiles may be as long as a pair.
    const int64_t fold_setup = folds ? int64_t{shape.buffer_tokens} * kHeadDim * 2 * 4 : 0;
    const TilePlan plan =
        PlanTiles(shape, count, kHeadDim * kElementBytes, 16, shape.expanded_dim, slots, fold_setup,
                  folds ? int64_t{shape.expanded_dim} * kHeadDim * 2 : kTileBytes);
    rows_per_block = plan.tile_features;
    pair_rows = int64_t{plan.tiles} * plan.tile_features;
  } else {
    const int64_t even_share = (pairs * pair_rows + slots - 1) / slots;
    rows_per_block = std::max<int64_t>(kMinTileFeatures, (even_share + 15) / 16 * 16);
  }
  constexpr int kGroupTiles = HeadTiles(kMaxGroup);
  constexpr bool kSplitter = MmaColumnParts(kHeadDim) == 2;
  const int head_tiles = HeadTiles(group) == 1 ? 1 : kGroupTiles;
  const bool split_phi = kSplitter && rows_per_block >= kSplitPhiRows;
  const size_t shared =
      MmaStagingBytes(kHeadDim, folds, kElementBytes) +
      sizeof(float) * MmaExchangeWords(split_phi, head_tiles, Operands::kPairWords) +
      sizeof(float) * group * (MmaQueryStride(kHeadDim) + kHeadDim) +
      (folds ? FoldSharedBytes(kHeadDim) : 0);
  auto instance = [&](auto split) {
    constexpr bool kSplit = decltype(split)::value;
    return HeadTiles(group) == 1
               ? (folds ? StreamStatesMma<Operands, kHeadDim, 1, kFoldsInStep, kSplit>
                        : StreamStatesMma<Operands, kHeadDim, 1, false, kSplit>)
               : (folds ? StreamStatesMma<Operands, kHeadDim, kGroupTiles, kFoldsInStep, kSplit>
                        : StreamStatesMma<Operands, kHeadDim, kGroupTiles, false, kSplit>);
  };
  auto kernel = split_phi ? instance(std::bool_constant<kSplitter>{}) : instance(std::false_type{});
  if (shared > kDefaultSharedBytes) {
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(shared));
  }
  const int64_t blocks = (pairs * pair_rows + rows_per_block - 1) / rows_per_block;
  LaunchAfterStarted(kernel, static_cast<unsigned>(blocks), kThreads, shared, stream, shape, q,
                     decode_rows, state_offset, pairs, pair_rows, rows_per_block, scratch,
                     folds ? *fold_args : FoldArgs{});
}

}  // namespace sympow::kernels
