#include "model/backend_factory.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/cpu/cpu_backend.h"
#ifdef SYMPOW_WITH_CUDA
#include "model/cuda/cuda_backend.h"
#endif

namespace sympow {
namespace {

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const ModelConfig& config,
                                                           int64_t max_state_slots) {
#ifdef SYMPOW_WITH_CUDA
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend =
      CudaBackend::Create(config, max_state_slots);
  if (!backend.ok()) return backend.status();
  return std::unique_ptr<Backend>(std::move(*backend));
#else
  (void)config;
  (void)max_state_slots;
  return absl::FailedPreconditionError("this build of sympow has no CUDA backend (no nvcc)");
#endif
}

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(absl::string_view device,
                                                       const ModelConfig& config,
                                                       int64_t max_state_slots) {
  if (device == "cpu") return std::make_unique<CpuBackend>(config, max_state_slots);
  if (device == "cuda") return CreateCudaBackend(config, max_state_slots);
  if (device == "auto") {
    absl::StatusOr<std::unique_ptr<Backend>> cuda = CreateCudaBackend(config, max_state_slots);
    if (cuda.ok() || absl::IsResourceExhausted(cuda.status())) return cuda;
    return std::make_unique<CpuBackend>(config, max_state_slots);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--device must be cpu, cuda or auto, got '", device, "'"));
}

}  // namespace sympow
