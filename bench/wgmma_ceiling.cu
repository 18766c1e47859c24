#include <cuda_bf16.h>

#include <stdexcept>

#include "bench/wgmma_ceiling.h"
#include "kernels/grid.cuh"
#include "kernels/wgmma.cuh"

namespace sympow::bench {
namespace {

constexpr int kWarpgroups = 4;
constexpr int kThreads = 128 * kWarpgroups;
constexpr int kChainSteps = 4;
constexpr int kChains = 20000;

template <int kN>
__global__ void __launch_bounds__(kThreads, 1) WgmmaChains(float* sink) {
  __shared__ __align__(128) __nv_bfloat16 b[kChainSteps * 16 * kN];
  for (int i = threadIdx.x; i < kChainSteps * 16 * kN; i += blockDim.x) {
    b[i] = __float2bfloat16(1.0f / 64);
  }
  kernels::FenceSharedForWgmma();
  __syncthreads();
  uint32_t a[kChainSteps][4];
  for (auto& step : a) {
    for (uint32_t& x : step) x = kernels::PackBf16(1.0f / 64, 1.0f / 64);
  }
  float acc[kN / 8][4] = {};
  for (int chain = 0; chain < kChains; ++chain) kernels::WgmmaChainBf16<kN>(acc, a, b);
  float total = 0.0f;
  for (const auto& tile : acc) {
    for (float x : tile) total += x;
  }
  sink[blockIdx.x * blockDim.x + threadIdx.x] = total;
}

void CheckColumns(int columns) {
  if (columns != 72 && columns != 136) {
    throw std::invalid_argument("wgmma chains: columns must be 72 or 136");
  }
}

}  // namespace

int64_t WgmmaChainsSinkFloats() { return int64_t{kernels::MultiprocessorCount()} * kThreads; }

double WgmmaChainsFlops(int columns) {
  CheckColumns(columns);
  return 2.0 * 64 * columns * 16 * kChainSteps * kChains * kWarpgroups *
         kernels::MultiprocessorCount();
}

void LaunchWgmmaChains(int columns, float* sink, cudaStream_t stream) {
  CheckColumns(columns);
  const unsigned blocks = static_cast<unsigned>(kernels::MultiprocessorCount());
  if (columns == 72) {
    WgmmaChains<72><<<blocks, kThreads, 0, stream>>>(sink);
  } else {
    WgmmaChains<136><<<blocks, kThreads, 0, stream>>>(sink);
  }
}

}  // namespace sympow::bench
