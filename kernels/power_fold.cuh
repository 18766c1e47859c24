// Folding decode buffers into S and z, shared by decode (buffers that filled) and prefill (any
// buffer, before the prompt continues the state).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/power_attention.h"

namespace sympow::kernels {

// Folds items[0 … *item_count) (at most most_items); leaves the buffers' counts alone.
void LaunchFold(const PowerAttentionShape& shape, const FoldItem* items, const int* item_count,
                int64_t most_items, LayerOffsets layer, bool bf16_state, cudaStream_t stream);

}  // namespace sympow::kernels
