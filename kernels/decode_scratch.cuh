// The scratch a decode step's launches share (kernels/power_decode.cu).
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

}  // namespace sympow::kernels
