// Device helpers shared by the power-attention kernels.
#pragma once

#include <cstdint>

namespace sympow::kernels {

// The ε of MODEL.md, added to the normaliser.
constexpr float kNormalizerEpsilon = 1e-6f;

// The product x[f_0]·…·x[f_{p−1}] of one feature's factors.
__device__ inline float Monomial(const float* x, const uint8_t* factors, int degree) {
  float product = x[factors[0]];
  for (int j = 1; j < degree; ++j) product *= x[factors[j]];
  return product;
}

__device__ inline float EvenPower(float x, int degree) {
  const float squared = x * x;
  float result = squared;
  for (int k = 2; k < degree; k += 2) result *= squared;
  return result;
}

}  // namespace sympow::kernels
