// wgmma (kernels/wgmma.cuh) against a host product: A (64×K) from registers in mma.sync's
// fragment layout, B (K×N) in shared memory in the K-major layout (KMajorOffset), at the widths
// the prefill multiplies ([S | z | 0…] at head_dim 64 and 128, 64 keys), one k-step of 16 and
// chains (WgmmaChainBf16). A wrong descriptor, fragment layout or chain offset fails here
// by name rather than as a wrong prefill.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/wgmma.cuh"

namespace sympow::kernels {
namespace {

// One warpgroup: d (64 × kN, row-major) = a (64 × K) · b (K × kN), both row-major bf16, K = 16 ·
// kSteps, as one chain of kSteps wgmmas.
template <int kN, int kSteps>
__global__ void MultiplyChain(const __nv_bfloat16* a, const __nv_bfloat16* b, float* d) {
  constexpr int kK = 16 * kSteps;
  __shared__ __align__(128) __nv_bfloat16 shared_b[kK * kN];
  for (int i = threadIdx.x; i < kK * kN; i += blockDim.x) {
    shared_b[KMajorOffset<kN>(i / kN, i % kN)] = b[i];
  }
  FenceSharedForWgmma();
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  uint32_t fragments[kSteps][4];
  for (int step = 0; step < kSteps; ++step) {
    for (int e = 0; e < 4; ++e) {
      const int row = 16 * warp + g + 8 * (e & 1), col = 16 * step + 2 * t + 8 * (e >> 1);
      fragments[step][e] =
          PackBf16(__bfloat162float(a[row * kK + col]), __bfloat162float(a[row * kK + col + 1]));
    }
  }
  float acc[kN / 8][4] = {};
  WgmmaChainBf16<kN>(acc, fragments, shared_b);
  for (int n = 0; n < kN / 8; ++n) {
    for (int e = 0; e < 4; ++e) {
      d[(16 * warp + g + 8 * (e >> 1)) * kN + 8 * n + 2 * t + (e & 1)] = acc[n][e];
    }
  }
}

template <int kN, int kSteps>
void ExpectProductMatchesTheHost() {
  constexpr int kK = 16 * kSteps;
  std::mt19937 rng(kN * kSteps);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<__nv_bfloat16> a(64 * kK), b(kK * kN);
  for (auto& x : a) x = __float2bfloat16(uniform(rng));
  for (auto& x : b) x = __float2bfloat16(uniform(rng));
  __nv_bfloat16 *device_a = nullptr, *device_b = nullptr;
  float* device_d = nullptr;
  ASSERT_EQ(cudaMalloc(&device_a, a.size() * sizeof(a[0])), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&device_b, b.size() * sizeof(b[0])), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&device_d, 64 * kN * sizeof(float)), cudaSuccess);
  cudaMemcpy(device_a, a.data(), a.size() * sizeof(a[0]), cudaMemcpyHostToDevice);
  cudaMemcpy(device_b, b.data(), b.size() * sizeof(b[0]), cudaMemcpyHostToDevice);
  MultiplyChain<kN, kSteps><<<1, 128>>>(device_a, device_b, device_d);
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
      for (int k = 0; k < kK; ++k) {
        expected += double{__bfloat162float(a[m * kK + k])} * __bfloat162float(b[k * kN + n]);
      }
      worst = std::max(worst, std::abs(expected - d[m * kN + n]));
    }
  }
  // Products of bf16 values are exact in fp32; only the fp32 sums round (a layout or offset
  // error is of order 1).
  EXPECT_LT(worst, 2e-5 * kSteps) << "m64n" << kN << "k16, " << kSteps << " a chain";
}

TEST(GpuWgmma, RegisterATimesKMajorSharedBMatchesTheHostAt72Columns) {
  ExpectProductMatchesTheHost<72, 1>();
}

TEST(GpuWgmma, RegisterATimesKMajorSharedBMatchesTheHostAt136Columns) {
  ExpectProductMatchesTheHost<136, 1>();
}

TEST(GpuWgmma, AChainOfFourMatchesTheHostAt72Columns) { ExpectProductMatchesTheHost<72, 4>(); }

// The attention form's scores: 64 keys, head_dim 128 (eight steps).
TEST(GpuWgmma, AChainOfEightMatchesTheHostAt64Columns) { ExpectProductMatchesTheHost<64, 8>(); }

TEST(GpuWgmma, AChainOfFourMatchesTheHostAt136Columns) { ExpectProductMatchesTheHost<136, 4>(); }

}  // namespace
}  // namespace sympow::kernels
