// Decode with deferred state updates, in two launches per layer.
// 1. A block per item (session, kv head, tile of features; on tensor cores, a span of rows that
//    may cross items) streams its tile of S through shared memory (cp.async) into partial
//    numerators φ(q)ᵀS, and z into partial denominators φ(q)·z, added into the scratch. A bf16
//    state is multiplied on tensor cores (StreamStatesMma), an fp32 one too where queries are
//    grouped (in TF32 parts), else on CUDA cores (StreamStates). It is launched to be set up while
//    the kernel before it ends (the previous layer's FinishHeads, in a step of attention alone) and
//    puts its first rows of S in flight meanwhile: no kernel that may still run writes a state (the
//    folds and prefills that do are ordinary launches, over before it; after a launch 1 that folds,
//    FinishHeads lets the next launch start only when it ends). It waits for that kernel before it
//    reads q or touches the scratch, which FinishHeads zeroes.
// 2. FinishHeads: a block per (session, kv head) adds the token to the head's decode buffer,
//    attends over the buffer and writes the outputs from both parts (FinishHeadsWarps, a warp
//    per (session, kv head), for steps of many). It is launched to start while the last blocks
//    of launch 1 still run: the buffer's attention needs nothing from them, only the final sums
//    wait. It zeroes the sums it read, so the scratch needs no clearing before the next layer (no
//    memset node between layers). It lets the launch after it start at once, so that the next
//    layer's launch 1 takes the SMs its blocks leave idle.
// A buffer that fills is folded into its state by launch 1 of the step that fills it, on the bf16
// tensor-core path (kernels/decode_fold.cuh), else by the engine after the step (through the
// prefill, see GatherDecodeBuffers): a state is written once every N tokens instead of every token.
#include <cuda_bf16.h>

#include <algorithm>
#include <type_traits>

#include "kernels/decode_common.cuh"
#include "kernels/decode_finish_warps.cuh"
#include "kernels/decode_fold.cuh"
#include "kernels/decode_mma_operands.cuh"
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
// Blocks of StreamStatesMma an SM holds (a warp's accumulators are 64 columns at any head size):
// five fit 48 registers a thread with one n-tile of query heads, four with two; two when the
// launch folds (with three at 80 registers the accumulators of the advanced rows spill); two of
// fp32 state (64 KB of staging a block; at three, 80 registers spilled and a step of the 14B shape
// took 6-7% longer at 16-87 sessions, 11% less at one, bench/results/decode_session20.md).
constexpr int MmaBlocksPerSM(int head_tiles, bool folds, int element_bytes) {
  return folds || element_bytes == 4 ? 2 : (head_tiles == 1 ? 5 : 4);
}

// StreamStates streams rows through shared memory in kStages stages of kStageRows rows (16 bytes
// each) per thread: kStages − 1 stages are always in flight. Each thread reads back only what it
// copied, so no barrier is needed between copy and use.
constexpr int kStages = 4;
constexpr int kStageRows = 2;
constexpr size_t kStagingBytes = size_t{kStages} * kStageRows * kThreads * 16;
// StreamStatesMma: each warp streams its own blocks of 16 rows of (at most) 64 columns through a
// double buffer; through three buffers when it folds, with fewer blocks an SM (MmaBlocksPerSM) to
// keep as many rows in flight.
constexpr int kWarps = kThreads / 32;
__host__ __device__ constexpr int MmaStages(bool folds) { return folds ? 3 : 2; }
__host__ __device__ constexpr int MmaColumns(int head_dim) { return head_dim < 64 ? head_dim : 64; }
// Warps that share each block of state rows, one a column part: two at head_dim 128.
__host__ __device__ constexpr int MmaColumnParts(int head_dim) {
  return head_dim / MmaColumns(head_dim);
}
// Dynamic shared memory a launch gets without opting in (cudaFuncSetAttribute).
constexpr size_t kDefaultSharedBytes = 48 * 1024;
__host__ __device__ constexpr size_t MmaStagingBytes(int head_dim, bool folds, int element_bytes) {
  return size_t{kWarps} * MmaStages(folds) * 16 * MmaColumns(head_dim) * element_bytes;
}
// StreamStatesMma's rows of q in shared memory are 8 floats apart beyond the head, so that lanes
// making φ(q) of four query heads at once read four distinct sets of banks (Nsight Compute counted
// a third of the kernel's shared-memory wavefronts as excess at the 14B shape; the padding was
// measured only together with kSplitPhi, bench/results/decode_session19.md).
__host__ __device__ constexpr int MmaQueryStride(int head_dim) { return head_dim + 8; }
// Where two warps share a row block (MmaColumnParts 2, one warp a column half), they may split the
// making of φ(q) (kSplitPhi): each makes half of the B fragments and takes the other half from its
// partner, per warp two slots (alternate row blocks) of a word per lane and n-tile. That saved
// 11% of a step at 64 and 175 sessions of the 14B shape, where each warp walks over a hundred row
// blocks, but lost 13% at one session (two row blocks a warp) and nothing at 16 (about 31): blocks
// of kSplitPhiRows rows or more split (bench/results/decode_session19.md).
constexpr int64_t kSplitPhiRows = 4096;
__host__ __device__ constexpr int MmaExchangeWords(bool split_phi, int head_tiles) {
  return split_phi ? kWarps * 2 * 32 * head_tiles : 0;
}

// Shared memory besides the staging: q, φ(q) of the tile's features, the numerators' sums.
size_t TileSharedBytes(const PowerAttentionShape& shape, int tile_features) {
  const int group = shape.num_heads / shape.num_kv_heads;
  return sizeof(float) * group * (2 * shape.head_dim + tile_features);
}

// How the states of a step are cut into items: `tiles` tiles of `tile_features` features (the last
// one shorter) per (row, kv head), numbered tile-fastest, a block each.
struct TilePlan {
  int tile_features;
  int tiles;
  int64_t items;
};

// Tiles of at most 128 KB of state amortise a block's set-up (q, φ(q) of its features, the sums'
// atomics) over more state; swept on an H200 for the kernel that rewrote the state every token
// (bench/results/raw/decode_tile_sweep.log): 128 KB beat 64 KB by 2–5 points of copy bandwidth
// and 32 KB by up to 30 on the 14B shape. A block's set-up
// costs about as much as streaming kSetupBytesPerHead more state for each query head of its group.
constexpr int64_t kTileBytes = 128 * 1024;
constexpr int64_t kSetupBytesPerHead = 4 * 1024;
constexpr int kMinTileFeatures = 64;

// Equal tiles, a multiple of `rounding` features, whose φ fits `most_features`. Blocks run in
// waves of `wave`: the tile count is the one with the least estimated time, ceil(blocks / wave) ×
// (tile bytes + set-up), so that a batch of few sessions is cut finer and no last wave runs mostly
// empty.
TilePlan PlanTiles(const PowerAttentionShape& shape, int64_t count, int64_t row_bytes, int rounding,
                   int64_t most_features, int64_t wave, int64_t extra_setup_bytes = 0,
                   int64_t most_tile_bytes = kTileBytes) {
  const int group = shape.num_heads / shape.num_kv_heads;
  const int64_t D = shape.expanded_dim;
  auto round_up = [&](int64_t features) { return (features + rounding - 1) / rounding * rounding; };
  const int64_t largest_tile = std::max<int64_t>(rounding, most_features / rounding * rounding);
  const int64_t tile_bytes = std::min(most_tile_bytes, largest_tile * row_bytes);
  const int64_t fewest_tiles = (D * row_bytes + tile_bytes - 1) / tile_bytes;
  const int64_t pairs = count * shape.num_kv_heads;
  // Beyond two waves' worth of extra tiles, finer cuts only add set-up.
  const int64_t most_tiles =
      std::max(fewest_tiles, std::min(D / kMinTileFeatures, fewest_tiles + 2 * wave / pairs));
  int64_t best_features = 0;
  double best_time = 0.0;
  for (int64_t tiles = fewest_tiles; tiles <= most_tiles; ++tiles) {
    const int64_t features = round_up((D + tiles - 1) / tiles);
    const int64_t blocks = pairs * ((D + features - 1) / features);
    const double time =
        static_cast<double>((blocks + wave - 1) / wave) *
        static_cast<double>(features * row_bytes + kSetupBytesPerHead * group + extra_setup_bytes);
    if (best_features == 0 || time < best_time) {
      best_features = features;
      best_time = time;
    }
  }
  const int tiles = static_cast<int>((D + best_features - 1) / best_features);
  return {static_cast<int>(best_features), tiles, pairs * tiles};
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

// The block's item: where its tile of S and z starts, its features, its query heads.
struct Item {
  void* state;  // the kv head's S; its z follows D × d elements on (only a fold writes them)
  int first_feature;
  int tile;       // features in this tile
  int64_t head;   // r · H + the kv head's first query head, r the decode row's index (scratch)
  int64_t query;  // the same head in the q rows
  DecodeRow decode;
  int kv_head;
};

// Features [first, first + tile) of (decode row, kv head) pair `pair`.
template <typename Storage>
__device__ inline Item PairItem(const PowerAttentionShape& shape, const DecodeRow* decode_rows,
                                int64_t state_offset, int64_t pair, int first, int tile) {
  const int64_t r = pair / shape.num_kv_heads;
  const int h = static_cast<int>(pair - r * shape.num_kv_heads);
  const DecodeRow decode = decode_rows[r];
  const int group = shape.num_heads / shape.num_kv_heads;
  const int64_t kv_head_bytes =
      int64_t{shape.expanded_dim} * (shape.head_dim + 1) * sizeof(Storage);
  return {static_cast<char*>(decode.state) + state_offset + h * kv_head_bytes,
          first,
          tile,
          r * shape.num_heads + h * group,
          decode.row * shape.num_heads + h * group,
          decode,
          h};
}

template <typename Storage>
__device__ inline Item BlockItem(const PowerAttentionShape& shape, TilePlan plan,
                                 const DecodeRow* decode_rows, int64_t state_offset) {
  const int64_t pair = blockIdx.x / plan.tiles;
  const int first = static_cast<int>(blockIdx.x - pair * plan.tiles) * plan.tile_features;
  return PairItem<Storage>(shape, decode_rows, state_offset, pair, first,
                           min(plan.tile_features, shape.expanded_dim - first));
}

// The block's start on an item: its group's query rows into q [group × q_stride], its sums
// [group × d] zeroed; ends with a barrier.
__device__ inline void LoadQueriesClearSums(const Item& item, const float* q_rows, int d, int group,
                                            int q_stride, float* q, float* sums) {
  for (int i = threadIdx.x; i < group * d; i += blockDim.x) {
    q[i / d * q_stride + i % d] = q_rows[item.query * d + i];
    sums[i] = 0.0f;
  }
  __syncthreads();
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

// Adds the block's sums (after a barrier) into the scratch's numerators.
__device__ inline void AddNumerators(const PowerAttentionShape& shape, const Item& item,
                                     const float* sums, const DecodeScratch& scratch) {
  const int group_columns = shape.num_heads / shape.num_kv_heads * shape.head_dim;
  for (int i = threadIdx.x; i < group_columns; i += blockDim.x) {
    atomicAdd(&scratch.numerators[item.head * shape.head_dim + i], sums[i]);
  }
}

// grid (items): the CUDA-core path, for fp32 states (and shapes StreamStatesMma does not take).
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
// to its head's denominator: no tile-wide φ pass before the stream. With kSplitPhi (bf16) the two
// warps of a row block make two values each (features 2t + 8·part, + 1) and exchange them
// (MmaExchangeWords). With kFolds (bf16), an item whose buffer fills with this step's token also
// writes its rows back advanced over the buffer (kernels/decode_fold.cuh).
template <typename Operands, int kHeadDim, int kHeadTiles, bool kFolds, bool kSplitPhi>
__device__ void StreamItemMma(const PowerAttentionShape& shape, const float* q_rows,
                              const Item& item, const DecodeScratch& scratch,
                              const FoldArgs& fold_args) {
  using Element = typename Operands::Element;
  constexpr bool kBf16 = std::is_same_v<Element, __nv_bfloat16>;
  static_assert(kBf16 || !(kFolds || kSplitPhi), "only bf16 states fold or split φ(q)");
  constexpr int kColumns = MmaColumns(kHeadDim);
  static_assert(kColumns == 64, "Operands multiply blocks of 64 columns");
  constexpr int kParts = MmaColumnParts(kHeadDim);
  constexpr int kRowWarps = kWarps / kParts;
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
  float* q = reinterpret_cast<float*>(exchange + MmaExchangeWords(kSplitPhi, kHeadTiles));
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
      // b[j][0] holds this warp's pair; the partner's arrives through its slot for block i.
      uint32_t* slots = exchange + (row_warp * 2 + i % 2) * 2 * 32 * kHeadTiles;
#pragma unroll
      for (int j = 0; j < kHeadTiles; ++j) slots[(part * kHeadTiles + j) * 32 + lane] = b[j][0];
      PairBarrier(row_warp);
#pragma unroll
      for (int j = 0; j < kHeadTiles; ++j) {
        const uint32_t mine_half = b[j][0];
        const uint32_t theirs = slots[((1 - part) * kHeadTiles + j) * 32 + lane];
        b[j][0] = part == 0 ? mine_half : theirs;
        b[j][1] = part == 0 ? theirs : mine_half;
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

// The tensor-core path at one head size. At head_dim 64, tiles of whole pairs (PlanTiles) in
// waves, the last part empty, so that FinishHeads starts on SMs its blocks leave; at 128, blocks
// of one wave with equal spans of rows (a multiple of 16, at least kMinTileFeatures), where they
// were 7-13% faster at 16-175 sessions of the 14B shape and 3-5% slower at 64-256 of the 124M one
// (bench/results/decode_session15.md). No φ is kept in shared memory, so a span is as long as it
// needs to be. A launch that folds (`fold_args` given, bf16 states) is an instance of its own.
template <typename Operands, int kHeadDim>
void LaunchStreamStatesMma(cudaStream_t stream, const PowerAttentionShape& shape, const float* q,
                           const DecodeRow* decode_rows, int64_t count, int64_t state_offset,
                           DecodeScratch scratch, const FoldArgs* fold_args) {
  const int group = shape.num_heads / shape.num_kv_heads;
  const int64_t pairs = count * shape.num_kv_heads;
  constexpr int kElementBytes = sizeof(typename Operands::Element);
  constexpr bool kBf16 = kElementBytes == 2;
  const bool folds = kBf16 && fold_args != nullptr;
  const int64_t slots =
      int64_t{MultiprocessorCount()} * MmaBlocksPerSM(HeadTiles(group), folds, kElementBytes);
  int64_t pair_rows = shape.expanded_dim, rows_per_block = 0;
  if constexpr (kHeadDim == 64) {
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
  constexpr bool kSplitter = kBf16 && MmaColumnParts(kHeadDim) == 2;
  const int head_tiles = HeadTiles(group) == 1 ? 1 : kGroupTiles;
  const bool split_phi = kSplitter && rows_per_block >= kSplitPhiRows;
  const size_t shared = MmaStagingBytes(kHeadDim, folds, kElementBytes) +
                        sizeof(float) * MmaExchangeWords(split_phi, head_tiles) +
                        sizeof(float) * group * (MmaQueryStride(kHeadDim) + kHeadDim) +
                        (folds ? FoldSharedBytes(kHeadDim) : 0);
  auto instance = [&](auto split) {
    constexpr bool kSplit = decltype(split)::value;
    return HeadTiles(group) == 1
               ? (folds ? StreamStatesMma<Operands, kHeadDim, 1, kBf16, kSplit>
                        : StreamStatesMma<Operands, kHeadDim, 1, false, kSplit>)
               : (folds ? StreamStatesMma<Operands, kHeadDim, kGroupTiles, kBf16, kSplit>
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

// From this many (row, kv head) items an SM, FinishHeadsWarps finishes a step, below FinishHeads:
// a warp per item takes longer over one item than a block, but holds the SM far less. Measured
// on an H200 (bench/results/decode_session13.md): from 4 an SM, 124m bf16 950 → 900 µs a step at
// 64 sessions and 3,545 → 3,044 at 256; from 1 an SM, 16 sessions went 321 → 536.
constexpr int kFinishWarpsItemsPerSM = 4;

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
  if (count == 0) return;
  const int group = shape.num_heads / shape.num_kv_heads;
  const DecodeScratch sums(scratch, shape, count);
  const FoldArgs fold_args{rows, layer, padding_state};
  const FoldArgs* folds = fold_full_buffers ? &fold_args : nullptr;
  // The tensor-core path reads degree 2's factor pairs. fp32 states take it where queries are
  // grouped: at the 14B shape (group 5) a step took 13-19% less than on CUDA cores (where each
  // state value costs an FMA a query head) at 16-87 sessions; without grouping (the 124M shape)
  // 8-28% more at 64 and 256 (bench/results/decode_session20.md).
  const bool tensor_cores = shape.degree == 2 && (shape.head_dim == 64 || shape.head_dim == 128);
  if (tensor_cores && bf16_state) {
    (shape.head_dim == 64
         ? LaunchStreamStatesMma<Bf16StateOperands, 64>
         : LaunchStreamStatesMma<Bf16StateOperands, 128>)(stream, shape, rows.q, decode_rows, count,
                                                          layer.state, sums, folds);
  } else if (tensor_cores && group > 1) {
    (shape.head_dim == 64
         ? LaunchStreamStatesMma<Fp32StateOperands, 64>
         : LaunchStreamStatesMma<Fp32StateOperands, 128>)(stream, shape, rows.q, decode_rows, count,
                                                          layer.state, sums, nullptr);
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
  const int64_t items = count * shape.num_kv_heads;
  const bool many = items >= int64_t{kFinishWarpsItemsPerSM} * MultiprocessorCount();
  if (many && (shape.head_dim == 64 || shape.head_dim == 128)) {
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
