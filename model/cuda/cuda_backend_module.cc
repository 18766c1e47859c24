// The entry point of the CUDA backend module (libsympow_cuda_backend.so), which
// model/backend_factory.cc loads with dlopen when a GPU is asked for.
#include "model/cuda/cuda_backend_module.h"

#include "model/cuda/cuda_backend.h"

extern "C" void SympowCreateCudaBackend(const sympow::ModelConfig& config, int64_t max_state_slots,
                                        sympow::BackendOrStatus* result) {
  absl::StatusOr<std::unique_ptr<sympow::CudaBackend>> backend =
      sympow::CudaBackend::Create(config, max_state_slots);
  if (backend.ok()) {
    *result = std::unique_ptr<sympow::Backend>(std::move(*backend));
  } else {
    *result = backend.status();
  }
}
