// The tensor-core prefill for degree 2 at head_dim 64 and 128 (power_prefill_mma.cu), which
// PowerPrefill and its planning functions dispatch to.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "kernels/power_attention.h"

namespace sympow::kernels {

bool UsesTensorCorePrefill(int head_dim, int degree);
int TensorCorePrefillChunkTokens(int head_dim, bool with_outputs);
int64_t TensorCorePrefillWorkspaceFloats(int head_dim, int kv_heads, int64_t chunks,
                                         bool with_outputs);
std::vector<int32_t> TensorCoreFeatureRows(const std::vector<uint8_t>& monomials, int head_dim);
void TensorCorePrefill(const PowerAttentionShape& shape, const AttentionRows& rows,
                       const PrefillSegment* segments, int64_t segment_count,
                       const PrefillChunk* chunks, int64_t chunk_count, float* workspace,
                       cudaStream_t stream);

}  // namespace sympow::kernels
