// A decode buffer folded into its state in the step that fills it (kernels/power_decode.cu,
// StreamItemMma): the block that streams a tile of S for the query also writes the tile back
// advanced over the buffer's N tokens, S' = e^A·S + φ(K)ᵀ·(w∘V) and z' = e^A·z + φ(K)ᵀ·w (w_s the
// decay after token s, A all of the buffer's log gates; MODEL.md, deferred updates), so that a
// fold costs one write of the state instead of a separate read and write. The block puts the
// buffer's tokens in shared memory as bf16 token pairs once an item (FoldTokens); each warp then
// multiplies its blocks of 16 state rows on tensor cores (FoldRows), as the prefill's fold does:
// keys rounded to bf16, φ(K)'s entries rounded once, the decayed values and decays in bf16, fp32
// accumulation from the state as stored.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/decode_common.cuh"
#include "kernels/mma_bf16.cuh"
#include "kernels/power_attention.h"
#include "kernels/power_common.cuh"

namespace sympow::kernels {

// Buffers of at most kFoldTokens fold in the step (FoldsInDecode); their tokens are padded with
// zeros to a multiple of 16 (an MMA's k). Rows of kFoldStride bf16 (144 bytes) let ldmatrix and
// the fragments' 4-byte loads read without bank conflicts.
constexpr int kFoldTokens = 64;
constexpr int kFoldStride = kFoldTokens + 8;
constexpr int kFoldWords = kFoldStride / 2;  // 4-byte words of a row: token pairs

// What a decode launch needs to fold: the step's rows (the new token's k, v, log g), where the
// layer's buffers are, and the padding rows' state, which never folds.
struct FoldArgs {
  AttentionRows rows;
  LayerOffsets layer;
  const void* padding_state;
};

// The buffer's tokens in shared memory (FoldSharedBytes): keys and decayed values by column, each
// word a token pair (column c of tokens 2p, 2p + 1), the decays as pairs, and e^A.
struct FoldTokens {
  uint32_t* keys;    // [d × kFoldWords]
  uint32_t* values;  // [d × kFoldWords]
  uint32_t* decays;  // [kFoldWords]
  float* state_decay;
  float* log_decays;  // [kFoldTokens], while they are made

  __device__ FoldTokens(float* shared, int head_dim)
      : keys(reinterpret_cast<uint32_t*>(shared)),
        values(keys + head_dim * kFoldWords),
        decays(values + head_dim * kFoldWords),
        state_decay(reinterpret_cast<float*>(decays + kFoldWords)),
        log_decays(state_decay + 4) {}
};

__host__ __device__ constexpr size_t FoldSharedBytes(int head_dim) {
  return sizeof(uint32_t) * (2 * head_dim * kFoldWords + kFoldWords) +
         sizeof(float) * (4 + kFoldTokens);
}

// Called by the whole block after WaitForPrimary, for the item of (decode row, kv head): whether
// its buffer fills with this step's token (and the row is not padding), and if so its N tokens
// into `tokens`. Ends with a barrier when it folds.
__device__ inline bool LoadFoldTokens(const PowerAttentionShape& shape, const FoldArgs& args,
                                      const DecodeRow& decode, int kv_head,
                                      const FoldTokens& tokens) {
  if (decode.state == args.padding_state) return false;
  const PairBuffer buffer(shape, args.rows, decode, args.layer, kv_head);
  const int n = buffer.n;
  if (n != shape.buffer_tokens) return false;
  if (threadIdx.x < 32) {
    for (int s = threadIdx.x; s < n; s += 32) tokens.log_decays[s] = buffer.LogGate(s);
    __syncwarp();
    const float all = DecaysToNow(tokens.log_decays, n, tokens.log_decays);
    if (threadIdx.x == 0) *tokens.state_decay = all;
  }
  __syncthreads();
  // The decay after token s, exponentiated now; 0 for the padding past the buffer.
  auto decay = [&](int s) { return s < n ? tokens.log_decays[s] : 0.0f; };
  const int d = shape.head_dim;
  const int pairs = (n + 15) / 16 * 8;
  // Consecutive threads take consecutive columns of a token pair (the global reads coalesce),
  // kBatch pairs' reads in flight at once: the block waits on them with nothing else to do.
  constexpr int kBatch = 8;
  for (int base = threadIdx.x; base < pairs * d; base += kBatch * blockDim.x) {
    float k[kBatch][2], v[kBatch][2];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int i = base + b * blockDim.x;
      const int p = i / d, c = i % d;
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int s = 2 * p + e;
        const bool real = i < pairs * d && s < n;
        k[b][e] = real ? buffer.Key(s)[c] : 0.0f;
        v[b][e] = real ? buffer.Value(s)[c] : 0.0f;
      }
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int i = base + b * blockDim.x;
      const int p = i / d, c = i % d;
      if (i < pairs * d) {
        tokens.keys[c * kFoldWords + p] = PackBf16(k[b][0], k[b][1]);
        tokens.values[c * kFoldWords + p] =
            PackBf16(v[b][0] * decay(2 * p), v[b][1] * decay(2 * p + 1));
      }
    }
  }
  for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
    tokens.decays[p] = PackBf16(decay(2 * p), decay(2 * p + 1));
  }
  __syncthreads();
  return true;
}

// The factors x_i·x_j of a lane's two rows of a block of 16, `feature` (g) and `feature + 8`,
// byte 2·half holding i and byte 2·half + 1 holding j of row g + 8·half (rows at or past D read
// row D − 1's; they are not stored). Packed so that a block ahead costs one register.
__device__ inline uint32_t FoldFactorsOf(const PowerAttentionShape& shape, int feature) {
  const auto* pairs = reinterpret_cast<const uint16_t*>(shape.monomials);
  const int last = shape.expanded_dim - 1;
  return pairs[min(feature, last)] | uint32_t{pairs[min(feature + 8, last)]} << 16;
}

// Shared memory by 32-bit address (SharedAddress): the fold's loads and stores, without the
// generic-to-shared conversion a pointer would cost each time.
__device__ inline uint32_t LoadShared32(uint32_t address) {
  uint32_t x;
  asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(x) : "r"(address));
  return x;
}
__device__ inline void StoreShared32(uint32_t address, uint32_t x) {
  asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(address), "r"(x) : "memory");
}
__device__ inline uint4 LoadShared128(uint32_t address) {
  uint4 x;
  asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(x.x), "=r"(x.y), "=r"(x.z), "=r"(x.w)
               : "r"(address));
  return x;
}
__device__ inline void LdMatrixX4At(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// One warp's block of 16 state rows (rows `first`… of the tile, `rows_left` of them real), kColumns
// columns from column `column0`, staged in `stage` (row-major, 16-byte chunks XOR-swizzled by row,
// as StreamItemMma stages them): the advanced rows go to `S` (row 0 of the block, at column0) and,
// for the warp that holds column 0 (with_z), z' to `z` (feature 0 of the block). The stage is
// overwritten. The k loop is unrolled over kFoldTokens, steps past the buffer skipped.
template <int kHeadDim, int kColumns>
__device__ inline void FoldRows(const FoldTokens& tokens, int token_pairs, uint32_t factors,
                                __nv_bfloat16* stage, int column0, int rows_left, bool with_z,
                                __nv_bfloat16* S, __nv_bfloat16* z) {
  constexpr int kNTiles = kColumns / 8;
  constexpr int kChunks = kColumns / 8;
  constexpr uint32_t kRowBytes = kFoldWords * 4;
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const float decay = *tokens.state_decay;
  // Rows g and g + 8 of the stage share their swizzle (row & 7 = g): element (g + 8·half, 8·nt +
  // 2t) is at stage_row[half] + ((nt ^ g) · 8 + 2t) · 2 bytes.
  const uint32_t stage_base = SharedAddress(stage);
  uint32_t stage_row[2], key_first[2], key_second[2], weight[2];
  float z_old[2] = {};
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    stage_row[half] = stage_base + (g + 8 * half) * kColumns * 2 + 4 * t;
    const uint32_t first = (factors >> (16 * half)) & 0xff,
                   second = (factors >> (16 * half + 8)) & 0xff;
    key_first[half] = SharedAddress(tokens.keys) + first * kRowBytes + 4 * t;
    key_second[half] = SharedAddress(tokens.keys) + second * kRowBytes + 4 * t;
    // The key weight: 1 on the diagonal, 2 off it, as a bf16 pair.
    weight[half] = first == second ? 0x3f803f80u : 0x40004000u;
    if (with_z && t == 0 && g + 8 * half < rows_left)
      z_old[half] = __bfloat162float(z[g + 8 * half]);
  }
  float acc[kNTiles + 1][4];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt) {
      const uint32_t pair = LoadShared32(stage_row[half] + (nt ^ g) * 16);
      const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&pair));
      acc[nt][2 * half] = x.x * decay;
      acc[nt][2 * half + 1] = x.y * decay;
    }
    acc[kNTiles][2 * half] = z_old[half] * decay;
    acc[kNTiles][2 * half + 1] = 0.0f;
  }
  // B's address for ldmatrix.x4: matrices (n-tile 2q, k 0-7), (2q, 8-15), (2q + 1, 0-7),
  // (2q + 1, 8-15); lane l gives row l % 8 of matrix l / 8.
  const uint32_t value_row = SharedAddress(tokens.values) +
                             (column0 + 8 * (lane / 16) + lane % 8) * kRowBytes +
                             16 * ((lane / 8) % 2);
  const uint32_t decay_pairs = SharedAddress(tokens.decays) + 4 * t;
#pragma unroll
  for (int p0 = 0; p0 < kFoldTokens / 2; p0 += 8) {
    if (p0 >= token_pairs) break;
    uint32_t a[4];
#pragma unroll
    for (int hi = 0; hi < 2; ++hi) {  // tokens 2t, 2t + 1 (hi 0) or 2t + 8, 2t + 9 (hi 1)
      const uint32_t offset = 4 * (p0 + 4 * hi);
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const uint32_t product = MulBf16Pairs(LoadShared32(key_first[half] + offset),
                                              LoadShared32(key_second[half] + offset));
        a[2 * hi + half] = MulBf16Pairs(product, weight[half]);
      }
    }
#pragma unroll
    for (int q = 0; q < kNTiles / 2; ++q) {
      uint32_t b[4];
      LdMatrixX4At(b, value_row + 16 * q * kRowBytes + 4 * p0);
      MmaBf16(acc[2 * q], a, b[0], b[1]);
      MmaBf16(acc[2 * q + 1], a, b[2], b[3]);
    }
    if (with_z) {
      // B = the decays in column 0, zeros in the rest.
      const uint32_t b0 = g == 0 ? LoadShared32(decay_pairs + 4 * p0) : 0u;
      const uint32_t b1 = g == 0 ? LoadShared32(decay_pairs + 4 * (p0 + 4)) : 0u;
      MmaBf16(acc[kNTiles], a, b0, b1);
    }
  }
  __syncwarp();  // every lane is done with the stage's old rows
#pragma unroll
  for (int half = 0; half < 2; ++half) {
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt) {
      StoreShared32(stage_row[half] + (nt ^ g) * 16,
                    PackBf16(acc[nt][2 * half], acc[nt][2 * half + 1]));
    }
    if (with_z && t == 0 && g + 8 * half < rows_left) {
      z[g + 8 * half] = __float2bfloat16_rn(acc[kNTiles][2 * half]);
    }
  }
  __syncwarp();
#pragma unroll
  for (int c = lane; c < 16 * kChunks; c += 32) {
    const int row = c / kChunks, chunk = c % kChunks;
    if (row < rows_left) {
      *reinterpret_cast<uint4*>(S + static_cast<int64_t>(row) * kHeadDim + chunk * 8) =
          LoadShared128(stage_base + (row * kColumns + ((chunk ^ (row & 7)) * 8)) * 2);
    }
  }
}

}  // namespace sympow::kernels
