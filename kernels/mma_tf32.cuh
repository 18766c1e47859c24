// Warp-level TF32 tensor-core primitives (sm_80+): mma.sync m16n8k8 with fp32 accumulation.
// Fragment layouts (PTX ISA, "m16n8k8 fragments" for .tf32), with g = lane / 4 and t = lane % 4:
//   A (16×8, row-major) a[0]: row g, col t;  a[1]: row g+8, col t;
//                       a[2]: row g, col t+4; a[3]: row g+8, col t+4.
//   B (8×8)             b[0]: row t, col g;   b[1]: row t+4, col g.
//   C (16×8, fp32)      c[0], c[1]: row g, cols 2t, 2t+1; c[2], c[3]: row g+8, same cols.
#pragma once

#include <cstdint>

namespace sympow::kernels {

// x rounded to TF32 (10-bit mantissa), in an fp32 register.
__device__ inline uint32_t RoundToTf32(float x) {
  uint32_t rounded;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(rounded) : "f"(x));
  return rounded;
}

// One part of x as TF32: its rounding (high) or the rounding of what that left (low); high + low
// keeps fp32's precision to about 2^-22.
__device__ inline uint32_t Tf32Part(float x, bool low) {
  const uint32_t high = RoundToTf32(x);
  return low ? RoundToTf32(x - __uint_as_float(high)) : high;
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
