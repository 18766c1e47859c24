// Launch geometry and reductions shared by the kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

namespace sympow::kernels {

constexpr int kThreads = 256;

inline int MultiprocessorCount() {
  static const int count = [] {
    int device = 0, sms = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    return sms;
  }();
  return count;
}

// Blocks for a grid-stride loop over n items: enough to fill the GPU, never zero.
inline unsigned GridFor(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 ? 65535 : blocks));
}

// Programmatic dependent launch (sm_90): a kernel launched after a primary with
// LaunchAfterStarted may begin once every block of the primary has called
// AllowDependentsToStart, and must call WaitForPrimary before it reads what the primary writes.
__device__ inline void AllowDependentsToStart() {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}
__device__ inline void WaitForPrimary() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

// Launches kernel<<<grid, block, shared, stream>>>(args...) so that it may start while the
// stream's previous kernel still runs (see AllowDependentsToStart).
template <typename... Params, typename... Args>
void LaunchAfterStarted(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared,
                        cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

// Barrier 1 + `pair` (pair < 4; 0 is __syncthreads') of two warps: both must call it, as often.
// The ids are constants, so that the kernel reserves only the barriers it names.
__device__ inline void PairBarrier(int pair) {
  switch (pair) {
    case 0:
      asm volatile("bar.sync 1, 64;" ::: "memory");
      break;
    case 1:
      asm volatile("bar.sync 2, 64;" ::: "memory");
      break;
    case 2:
      asm volatile("bar.sync 3, 64;" ::: "memory");
      break;
    default:
      asm volatile("bar.sync 4, 64;" ::: "memory");
      break;
  }
}

__device__ inline int64_t GlobalThread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64_t GridThreads() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

template <typename T>
__device__ inline T WarpSum(T value) {
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
template <typename T>
__device__ inline T BlockSum(T value) {
  __shared__ T partial[32];
  value = WarpSum(value);
  const int warp = threadIdx.x / 32;
  if (threadIdx.x % 32 == 0) partial[warp] = value;
  __syncthreads();
  T total = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += partial[w];
  __syncthreads();
  return total;
}

}  // namespace sympow::kernels
