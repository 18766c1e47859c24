// Checks of CUDA runtime and cuBLAS results. A failure here is a bug or a broken device, not bad
// input, so it is logged and the process stops rather than serving wrong numbers.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace sympow {

void CudaCheck(cudaError_t status, const char* what);
void CublasCheck(cublasStatus_t status, const char* what);
// Catches a failed kernel launch right where it happened.
inline void CheckLaunch(const char* kernel) { CudaCheck(cudaGetLastError(), kernel); }

}  // namespace sympow
