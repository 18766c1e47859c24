// Bulk copies from global into shared memory by the copy engine (sm_90's cp.async.bulk, no tensor
// map: contiguous bytes), issued by one thread and completing on an mbarrier that the readers wait
// on, so a block's warps need no block barrier to share a stage of copied data.
#pragma once

#include <cstdint>

#include "kernels/mma_bf16.cuh"

namespace sympow::kernels {

// An mbarrier whose phase completes after `arrivals` arrivals (and the bytes they expect).
__device__ inline void MbarrierInit(uint64_t* barrier, int arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(SharedAddress(barrier)),
               "r"(arrivals)
               : "memory");
}
// Makes initialised mbarriers visible to the copy engine; a block barrier must follow before
// other threads use them.
__device__ inline void FenceMbarrierInit() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

// One arrival on `barrier` that expects `bytes` more from the copies issued after it.
__device__ inline void MbarrierArriveExpecting(uint64_t* barrier, uint32_t bytes) {
  asm volatile(
      "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(SharedAddress(barrier)),
      "r"(bytes)
      : "memory");
}

// Copies `bytes` (a multiple of 16; both addresses 16-byte aligned) from global to shared memory,
// completing them on `barrier` (which an arrival expects).
__device__ inline void BulkCopyToShared(void* to, const void* from, uint32_t bytes,
                                        uint64_t* barrier) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::
          "r"(SharedAddress(to)),
      "l"(from), "r"(bytes), "r"(SharedAddress(barrier))
      : "memory");
}

// Waits until the phase of parity `parity` of `barrier` has completed (phases alternate 0, 1, …).
__device__ inline void MbarrierWait(uint64_t* barrier, uint32_t parity) {
  uint32_t done = 0;
  while (!done) {
    asm volatile(
        "{\n.reg .pred complete;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 complete, [%1], %2;\n"
        "selp.u32 %0, 1, 0, complete;\n}\n"
        : "=r"(done)
        : "r"(SharedAddress(barrier)), "r"(parity)
        : "memory");
  }
}

// Called by each of a block's `warps` warps when it has finished reading a buffer for the use-th
// time (from 0; `readers` counts over all uses): true in one lane of the last warp, which may then
// refill it. The fences order the other warps' reads before the refill.
__device__ inline bool LastReader(int* readers, int use, int warps) {
  __syncwarp();
  bool last = false;
  if (threadIdx.x % 32 == 0) {
    __threadfence_block();
    last = atomicAdd(readers, 1) == (use + 1) * warps - 1;
    __threadfence_block();
  }
  return last;
}

}  // namespace sympow::kernels
