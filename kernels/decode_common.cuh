// What a decode step's launches share (kernels/power_decode.cu): the scratch of their partial sums
// and the view of a (row, kv head)'s decode buffer.
#pragma once

#include <cstdint>

#include "kernels/power_attention.h"

namespace sympow::kernels {

// Partial sums of a step (DecodeScratchFloats): numerators [rows × H × d], then denominators
// [rows × H], over the state's features only.
struct DecodeScratch {
  float* numerators;
  float* denominators;

  __host__ __device__ DecodeScratch(float* scratch, const PowerAttentionShape& shape, int64_t count)
      : numerators(scratch), denominators(scratch + count * shape.num_heads * shape.head_dim) {}
};

// kv head h's decode buffer in a state slot (MODEL.md): its token count (header[0]), log gates
// [N], keys and values [N × d].
struct BufferView {
  float* header;
  float* log_gates;
  float* keys;
  float* values;

  __device__ BufferView(const PowerAttentionShape& shape, void* slot, LayerOffsets layer, int h)
      : header(reinterpret_cast<float*>(static_cast<char*>(slot) + layer.buffer) +
               h * BufferFloatsPerHead(shape)),
        log_gates(header + kBufferHeaderFloats),
        keys(log_gates + shape.buffer_tokens),
        values(keys + shape.buffer_tokens * shape.head_dim) {}
};

// A decode row's buffer of kv head h with the row's token as its token n − 1: decode attends over
// all n, then appends the token (Append).
struct PairBuffer : BufferView {
  const float* new_key;
  const float* new_value;
  float new_gate;
  int n;
  int d;
  int capacity;  // N

  __device__ PairBuffer(const PowerAttentionShape& shape, const AttentionRows& rows,
                        const DecodeRow& decode, LayerOffsets layer, int h)
      : BufferView(shape, decode.state, layer, h),
        new_key(rows.k + (decode.row * shape.num_kv_heads + h) * shape.head_dim),
        new_value(rows.v + (decode.row * shape.num_kv_heads + h) * shape.head_dim),
        new_gate(rows.log_gate ? rows.log_gate[decode.row * shape.num_kv_heads + h] : 0.0f),
        n(static_cast<int>(header[0]) + 1),
        d(shape.head_dim),
        capacity(shape.buffer_tokens) {}

  __device__ const float* Key(int s) const { return s == n - 1 ? new_key : keys + s * d; }
  __device__ const float* Value(int s) const { return s == n - 1 ? new_value : values + s * d; }
  __device__ float LogGate(int s) const { return s == n - 1 ? new_gate : log_gates[s]; }

  // Stores the token into the buffer, by `threads` threads (this one is `thread`), once every
  // thread has read what attending needed.
  __device__ void Append(int thread, int threads) const {
    for (int j = thread; j < d; j += threads) {
      keys[(n - 1) * d + j] = new_key[j];
      values[(n - 1) * d + j] = new_value[j];
    }
    if (thread == 0) {
      log_gates[n - 1] = new_gate;
      header[0] = static_cast<float>(n);
    }
  }

  // The buffer after the step, as Append; but emptied where the token fills it and the step
  // folded it into the state (`folded_full`: a launch that folds, kernels/decode_fold.cuh).
  __device__ void Advance(int thread, int threads, bool folded_full) const {
    if (!folded_full || n < capacity) {
      Append(thread, threads);
    } else if (thread == 0) {
      header[0] = 0.0f;
    }
  }
};

}  // namespace sympow::kernels
