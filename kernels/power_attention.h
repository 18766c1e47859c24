// Power attention on the GPU (MODEL.md): chunked prefill on tensor cores and fused batched decode.
// Both read and advance per-session states laid out as StateLayout says (S as D × d, then z).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace sympow::kernels {

// The shape of one layer's power attention and its expansion φ, as device tables.
struct PowerAttentionShape {
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;      // d: a multiple of 16, at most 256
  int expanded_dim = 0;  // D
  int degree = 0;        // p, at most kMaxDegree
  float scale = 1.0f;
  float scale_pow = 1.0f;            // scale^p
  const uint8_t* monomials = nullptr;  // [D × p] sorted indices of each feature's factors
  const float* key_weights = nullptr;  // [D] multinomial weights (key side)
};

constexpr int kMaxDegree = 8;
constexpr int kMaxGroup = 8;  // query heads per kv head

// The rows of q/k/v/out and log gates (null without gating); row strides are the dense widths.
struct AttentionRows {
  const float* q = nullptr;         // [rows × num_heads·d]
  const float* k = nullptr;         // [rows × num_kv_heads·d]
  const float* v = nullptr;         // [rows × num_kv_heads·d]
  const float* log_gate = nullptr;  // [rows × num_kv_heads]
  float* out = nullptr;             // [rows × num_heads·d]
};

// One decode row: the batch row and its session's state for this layer (fp32 or bf16 elements).
struct DecodeRow {
  int64_t row;
  void* state;
};

// One prefill segment: consecutive batch rows and an fp32 state for this layer.
struct PrefillSegment {
  int64_t first_row;
  int64_t num_rows;
  float* state;
};

// Decodes one token for each of `count` rows; `scratch` holds count·num_heads·(d+1) floats.
void PowerDecode(const PowerAttentionShape& shape, const AttentionRows& rows,
                 const DecodeRow* decode_rows, int64_t count, bool bf16_state, float* scratch,
                 cudaStream_t stream);

// Prefills every segment (any length), advancing its fp32 state; `denominators` holds
// rows·num_heads floats, rows counted from row 0 of the batch.
void PowerPrefill(const PowerAttentionShape& shape, const AttentionRows& rows,
                  const PrefillSegment* segments, int64_t count, int64_t max_segment_rows,
                  float* denominators, cudaStream_t stream);

}  // namespace sympow::kernels
