// Warp-level TF32 tensor-core primitives (sm_80+): mma.sync m16n8k8 with fp32 accumulation.
// Fragment layouts (PTX ISA, "m16n8k8 fragments" for .tf32), with g = lane / 4 and t = lane % 4:
//   A (16×8, row-major) a[0]: row g, col t;  a[1]: row g+8, col t;
//                       a[2]: row g, col t+4; a[3]: row g+8, col t+4.
//   B (8×8)             b[0]: row t, col g;   b[1]: row t+4, col g.
//   C (16×8, fp32)      c[0], c[1]: row g, cols 2t, 2t+1; c[2], c[3]: row g+8, same cols.
#pragma once

#include <cstdint>

namespace sympow::kernels {

// The high part of x for a TF32 MMA: x with the 13 mantissa bits TF32 drops cleared.
__device__ inline uint32_t Tf32High(float x) { return __float_as_uint(x) & 0xffffe000u; }

// One part of x for a TF32 MMA: its high part, or what that leaves (exact in fp32; the MMA reads
// its top 10 mantissa bits, as it does of any fp32 operand), so that high + low keeps x to about
// 2^-20. Two integer/fp32 operations, where rounding each part (cvt.rna.tf32) took three.
__device__ inline uint32_t Tf32Part(float x, bool low) {
  const uint32_t high = Tf32High(x);
  return low ? __float_as_uint(x - __uint_as_float(high)) : high;
}

// c += a·b
__device__ inline void MmaTf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

}  // namespace sympow::kernels
