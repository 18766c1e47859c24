// Power attention on the GPU (MODEL.md): chunked prefill on tensor cores and batched decode with
// deferred state updates. Both read and advance per-session states laid out as StateLayout says
// (S as D × d, then z, per layer and kv head; then each one's decode buffer of recent tokens).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#ifdef __CUDACC__
#define SYMPOW_HOST_DEVICE __host__ __device__
#else
#define SYMPOW_HOST_DEVICE
#endif

namespace sympow::kernels {

// The shape of one layer's power attention and its expansion φ, as device tables.
struct PowerAttentionShape {
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;      // d: 32, 64 or 128
  int expanded_dim = 0;  // D
  int degree = 0;        // p, at most kMaxDegree
  float scale = 1.0f;
  float scale_pow = 1.0f;              // scale^p
  const uint8_t* monomials = nullptr;  // [D × p] sorted indices of each feature's factors
  const float* key_weights = nullptr;  // [D] multinomial weights (key side)
  // The tensor-core prefill's k-rows → features (FeatureRows); null where it does not apply.
  const int32_t* feature_rows = nullptr;
  int buffer_tokens = 1;  // N, the decode buffer's places (StateLayout::buffer_tokens)
  // The tensor-core prefill (UsesTensorCorePrefill) reads and writes PrefillSegment::state as
  // bf16 (rounded once, after the segment's last chunk); every other path takes fp32 states.
  bool bf16_states = false;
};

// A decode buffer in fp32: the count of tokens in it (padded to kBufferHeaderFloats), N log gates,
// N keys of d, N values of d (StateLayout).
constexpr int kBufferHeaderFloats = 4;
SYMPOW_HOST_DEVICE inline int64_t BufferFloatsPerHead(const PowerAttentionShape& shape) {
  return kBufferHeaderFloats + int64_t{shape.buffer_tokens} * (1 + 2 * shape.head_dim);
}

// Where one layer's states sit in a session's state slot: byte offsets from the slot's start of
// the layer's first kv head's (S, z) and of its first decode buffer.
struct LayerOffsets {
  int64_t state = 0;
  int64_t buffer = 0;
};

// A session's decode buffers to gather into rows: its state slot, its first row, its tokens.
struct BufferedRows {
  int64_t first_row;
  void* slot;
  int64_t tokens;
};

constexpr int kMaxDegree = 8;
constexpr int kMaxBufferTokens = 256;  // model/config.h's kMaxDecodeBufferTokens
constexpr int kMaxGroup = 8;           // query heads per kv head

// The rows of q/k/v/out and log gates (null without gating); row strides are the dense widths.
struct AttentionRows {
  const float* q = nullptr;         // [rows × num_heads·d]
  const float* k = nullptr;         // [rows × num_kv_heads·d]
  const float* v = nullptr;         // [rows × num_kv_heads·d]
  const float* log_gate = nullptr;  // [rows × num_kv_heads]
  float* out = nullptr;             // [rows × num_heads·d]
};

// One decode row: the batch row and its session's state (fp32 or bf16 elements).
struct DecodeRow {
  int64_t row;
  void* state;
};

// One prefill segment: consecutive batch rows and an fp32 state for this layer. PlanPrefill fills
// in where its chunks sit in the plan.
struct PrefillSegment {
  int64_t first_row;
  int64_t num_rows;
  float* state;
  int32_t first_chunk = 0;
  int32_t num_chunks = 0;
};

// A chunk of one segment's rows: the unit of the chunk-parallel prefill.
struct PrefillChunk {
  int64_t first_row;
  int32_t num_rows;
  int32_t segment;
};

// Floats of scratch PowerDecode needs for `count` rows: zero on entry, left zero on return.
int64_t DecodeScratchFloats(const PowerAttentionShape& shape, int64_t count);
// Decodes one token for each of `count` rows, whose DecodeRow::state is the start of the
// session's state slot (so one row list serves every layer): adds the token to each kv head's
// decode buffer, which must have room, and writes the outputs from S and z (only read) and the
// buffer. Rows whose state is `padding_state` (a recorded batch's padding) leave it as it was.
// With `fold_full_buffers` (only where FoldsInDecode), a row whose token fills its buffer folds
// the buffer into S and z in the same pass and leaves it empty.
void PowerDecode(const PowerAttentionShape& shape, const AttentionRows& rows,
                 const DecodeRow* decode_rows, int64_t count, LayerOffsets layer, bool bf16_state,
                 float* scratch, cudaStream_t stream, const void* padding_state = nullptr,
                 bool fold_full_buffers = false);
// PowerDecode's two launches, in its order: the stream over S and z into partial sums in the
// scratch (folding full buffers where `fold_full_buffers`), then the finish (the buffers'
// attention, the outputs, the token appended; the scratch zeroed). Separate so that a benchmark can
// time one without the other: the stream alone leaves its sums in the scratch, the finish alone
// fills the buffers (a fold must empty them before they are full).
void PowerDecodeStream(const PowerAttentionShape& shape, const AttentionRows& rows,
                       const DecodeRow* decode_rows, int64_t count, LayerOffsets layer,
                       bool bf16_state, float* scratch, cudaStream_t stream,
                       const void* padding_state = nullptr, bool fold_full_buffers = false);
void PowerDecodeFinish(const PowerAttentionShape& shape, const AttentionRows& rows,
                       const DecodeRow* decode_rows, int64_t count, LayerOffsets layer,
                       float* scratch, cudaStream_t stream, const void* padding_state = nullptr,
                       bool fold_full_buffers = false);
// Whether PowerDecode can fold full buffers: bf16 states on its tensor-core path (degree 2,
// head_dim 64 or 128) with buffers of at most 64 tokens.
bool FoldsInDecode(const PowerAttentionShape& shape, bool bf16_state);

// Copies each session's buffered tokens of one layer into rows (k, v [rows × kv_heads·d], log
// gates [rows × kv_heads]) and empties the buffers: prefilling those rows into the states folds
// the buffers (MODEL.md, deferred updates).
void GatherDecodeBuffers(const PowerAttentionShape& shape, const BufferedRows* sessions,
                         int64_t count, LayerOffsets layer, float* k, float* v, float* log_gate,
                         cudaStream_t stream);

// Degree 2 at head_dim 64 and 128 prefills on BF16 tensor cores, visiting φ's features in
// k-rows of its own order; this is the table from those rows to features (−1: padding), given
// the expansion's monomials [D × 2]. Empty for shapes the general TF32 path prefills.
std::vector<int32_t> FeatureRows(const std::vector<uint8_t>& monomials, int head_dim, int degree);

// Tokens per prefill chunk. A prefill without outputs (with_outputs false: AttentionRows without
// q and out, see PowerPrefill) may walk shorter chunks; plan and size it as such.
int PrefillChunkTokens(const PowerAttentionShape& shape, bool with_outputs);
// Cuts the segments into chunks (filling their first_chunk and num_chunks).
std::vector<PrefillChunk> PlanPrefill(const PowerAttentionShape& shape,
                                      std::vector<PrefillSegment>& segments, bool with_outputs);
// Floats of workspace PowerPrefill needs for `chunks` chunks (with outputs: a state per chunk and
// kv head; without: the chunks' decayed values).
int64_t PrefillWorkspaceFloats(const PowerAttentionShape& shape, int64_t chunks, bool with_outputs);

// Prefills every segment (any length), advancing its fp32 state, in three launches: each chunk's
// own contribution to the state (φ(k)ᵀv with the gates, on tensor cores); a scan over each
// segment's chunks that leaves the state before every chunk in the workspace and the final state
// in the segment's slot; and every chunk's outputs from the state before it plus the gated causal
// attention inside it. φ is expanded tile by tile in shared memory, never stored whole.
// With rows.q and rows.out null only the states advance (folding decode buffers), over chunks
// planned with_outputs false.
void PowerPrefill(const PowerAttentionShape& shape, const AttentionRows& rows,
                  const PrefillSegment* segments, int64_t segment_count, const PrefillChunk* chunks,
                  int64_t chunk_count, float* workspace, cudaStream_t stream);

}  // namespace sympow::kernels
