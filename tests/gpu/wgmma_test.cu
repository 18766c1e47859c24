// wgmma (kernels/wgmma.cuh) against a host product: A (64×16) from registers in mma.sync's
// fragment layout, B (16×N) in shared memory in the K-major layout (KMajorOffset), at the two
// widths the prefill multiplies ([S | z | 0…] at head_dim 64 and 128). A wrong descriptor or
// fragment layout fails here by name rather than as a wrong prefill.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/wgmma.cuh"

namespace sympow::kernels {
namespace {

// One warpgroup: d (64 × kN, row-major) = a (64 × 16) · b (16 × kN), both row-major bf16.
template <int kN>
__global__ void MultiplyOnce(const __nv_bfloat16* a, const __nv_bfloat16* b, float* d) {
  __shared__ __align__(128) __nv_bfloat16 shared_b[16 * kN];
  for (int i = threadIdx.x; i < 16 * kN; i += blockDim.x) {
    shared_b[KMajorOffset<kN>(i / kN, i % kN)] = b[i];
  }
  FenceSharedForWgmma();
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  uint32_t fragment[4];
  for (int e = 0; e < 4; ++e) {
    const int row = 16 * warp + g + 8 * (e & 1), col = 2 * t + 8 * (e >> 1);
    fragment[e] =
        PackBf16(__bfloat162float(a[row * 16 + col]), __bfloat162float(a[row * 16 + col + 1]));
  }
  float acc[kN / 8][4] = {};
  WgmmaFence();
  WgmmaBf16<kN>(acc, fragment, KMajorDescriptor(shared_b, kN * 16, 128));
  WgmmaCommit();
  WgmmaWait<0>();
  for (int n = 0; n < kN / 8; ++n) {
    for (int e = 0; e < 4; ++e) {
      d[(16 * warp + g + 8 * (e >> 1)) * kN + 8 * n + 2 * t + (e & 1)] = acc[n][e];
    }
  }
}

template <int kN>
void ExpectProductMatchesTheHost() {
  std::mt19937 rng(kN);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<__nv_bfloat16> a(64 * 16), b(16 * kN);
  for (auto& x : a) x = __float2bfloat16(uniform(rng));
  for (auto& x : b) x = __float2bfloat16(uniform(rng));
  __nv_bfloat16 *device_a = nullptr, *device_b = nullptr;
  float* device_d = nullptr;
  ASSERT_EQ(cudaMalloc(&device_a, a.size() * sizeof(a[0])), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&device_b, b.size() * sizeof(b[0])), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&device_d, 64 * kN * sizeof(float)), cudaSuccess);
  cudaMemcpy(device_a, a.data(), a.size() * sizeof(a[0]), cudaMemcpyHostToDevice);
  cudaMemcpy(device_b, b.data(), b.size() * sizeof(b[0]), cudaMemcpyHostToDevice);
  MultiplyOnce<kN><<<1, 128>>>(device_a, device_b, device_d);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> d(64 * kN);
  cudaMemcpy(d.data(), device_d, d.size() * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(device_a);
  cudaFree(device_b);
  cudaFree(device_d);
  double worst = 0.0;
  for (int m = 0; m < 64; ++m) {
    for (int n = 0; n < kN; ++n) {
      double expected = 0.0;
      for (int k = 0; k < 16; ++k) {
        expected += double{__bfloat162float(a[m * 16 + k])} * __bfloat162float(b[k * kN + n]);
      }
      worst = std::max(worst, std::abs(expected - d[m * kN + n]));
    }
  }
  // Products of bf16 values are exact in fp32; only the fp32 sums round.
  EXPECT_LT(worst, 1e-5) << "m64n" << kN << "k16";
}

TEST(GpuWgmma, RegisterATimesKMajorSharedBMatchesTheHostAt72Columns) {
  ExpectProductMatchesTheHost<72>();
}

TEST(GpuWgmma, RegisterATimesKMajorSharedBMatchesTheHostAt136Columns) {
  ExpectProductMatchesTheHost<136>();
}

}  // namespace
}  // namespace sympow::kernels
