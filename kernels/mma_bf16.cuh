// Warp-level BF16 tensor-core primitives (sm_80+): mma.sync m16n8k16 with fp32 accumulation,
// ldmatrix and cp.async. Fragment layouts (PTX ISA, "m16n8k16 fragments"), with g = lane / 4 and
// t = lane % 4:
//   A (16×16, row-major) a[0]: row g, cols 2t, 2t+1;  a[1]: row g+8, same cols;
//                        a[2]: row g, cols 2t+8, 2t+9; a[3]: row g+8, same cols.
//   B (16×8)             b[0]: rows 2t, 2t+1, col g;   b[1]: rows 2t+8, 2t+9, col g.
//   C (16×8, fp32)       c[0], c[1]: row g, cols 2t, 2t+1; c[2], c[3]: row g+8, same cols.
// Each 32-bit register holds two bf16, the lower column (or row, for B) in the low half.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace sympow::kernels {

__device__ inline uint32_t PackBf16(float low, float high) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
  return *reinterpret_cast<const uint32_t*>(&pair);
}

// The products of two bf16 pairs, each rounded once to bf16: exactly round(a·b) of the pairs'
// values, since a product of two bf16 is exact in fp32.
__device__ inline uint32_t MulBf16Pairs(uint32_t a, uint32_t b) {
  const __nv_bfloat162 product = __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&a),
                                         *reinterpret_cast<const __nv_bfloat162*>(&b));
  return *reinterpret_cast<const uint32_t*>(&product);
}

// c += a·b
__device__ inline void MmaBf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ inline uint32_t SharedAddress(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// Four 8×8 bf16 matrices; lane l gives the address of row l % 8 of matrix l / 8.
__device__ inline void LdMatrixX4(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(row)));
}

// The same, each matrix transposed: B fragments from a row-major [k × n] tile.
__device__ inline void LdMatrixX4Trans(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(row)));
}

// Two transposed matrices; lanes 0-15 give the row addresses.
__device__ inline void LdMatrixX2Trans(uint32_t (&r)[2], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(SharedAddress(row)));
}

__device__ inline void CpAsync16(void* shared, const void* global) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(SharedAddress(shared)),
               "l"(global)
               : "memory");
}
__device__ inline void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most `kPending` committed groups are still in flight.
template <int kPending>
__device__ inline void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

}  // namespace sympow::kernels
