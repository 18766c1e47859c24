#include "model/cuda/cuda_check.h"

#include <cstdlib>

#include "spdlog/spdlog.h"

namespace sympow {

void CudaCheck(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  spdlog::critical("CUDA error in {}: {}", what, cudaGetErrorString(status));
  std::abort();
}

void CublasCheck(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  spdlog::critical("cuBLAS error in {}: {}", what, cublasGetStatusString(status));
  std::abort();
}

}  // namespace sympow
