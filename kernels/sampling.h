// Token sampling on the GPU, a cluster of blocks per row of logits, by the rule in model/sampler.h:
// repetition penalty, temperature, top-k and top-p cuts (radix selection of the threshold, ties
// to the lower id), min-p, then the cumulative distribution inverted in id order at the row's
// uniform draw. Only token ids and log-probs need to leave the device. A row's cluster (8 blocks,
// each its slice of the row in shared memory) finds a cut with one histogram of the logits in
// eighths of a unit below the largest, then radix passes over the ids of the one eighth where
// the cut falls.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace sympow::kernels {

struct SampleRowParams {
  float temperature = 1.0f;  // 0: greedy
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  float repetition_penalty = 1.0f;
  double uniform = 0.0;         // in [0, 1)
  int64_t penalized_begin = 0;  // the row's penalised ids: penalized[begin, end)
  int64_t penalized_end = 0;
};

// The largest vocabulary SampleRows takes: a row's scaled logits are held in the shared memory
// of its cluster's blocks.
int64_t MaxSampledVocab();

// logits [rows × vocab]; `penalized` may be null when no row has penalised ids, otherwise
// `scratch` holds rows × vocab floats. Writes tokens[rows] and logprobs[rows] (log-softmax of the
// raw logits at the token).
void SampleRows(const float* logits, int64_t rows, int64_t vocab, const SampleRowParams* params,
                const int32_t* penalized, float* scratch, int32_t* tokens, float* logprobs,
                cudaStream_t stream);

}  // namespace sympow::kernels
