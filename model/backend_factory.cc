#include "model/backend_factory.h"

#include <dlfcn.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/cpu/cpu_backend.h"
#include "model/cuda/cuda_backend_module.h"

namespace sympow {
namespace {

#ifdef SYMPOW_CUDA_BACKEND_MODULE
// Beside the running program first (installed or bundled), then where the build put it.
std::string FindCudaModule() {
  std::error_code error;
  const std::filesystem::path program = std::filesystem::read_symlink("/proc/self/exe", error);
  const std::filesystem::path beside = program.parent_path() / SYMPOW_CUDA_BACKEND_MODULE;
  if (!error && std::filesystem::exists(beside)) return beside.string();
  return (std::filesystem::path(SYMPOW_CUDA_BACKEND_BUILD_DIR) / SYMPOW_CUDA_BACKEND_MODULE)
      .string();
}

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const ModelConfig& config,
                                                           int64_t max_state_slots) {
  // Loaded once and never unloaded: the backends it makes keep their code there.
  static void* module = nullptr;
  static std::string load_error;
  if (module == nullptr && load_error.empty()) {
    const std::string path = FindCudaModule();
    module = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (module == nullptr) load_error = absl::StrCat("cannot load ", path, ": ", dlerror());
  }
  if (module == nullptr) return absl::FailedPreconditionError(load_error);
  auto create =
      reinterpret_cast<SympowCreateCudaBackendFn>(dlsym(module, kSympowCreateCudaBackendSymbol));
  if (create == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("the CUDA backend module lacks ", kSympowCreateCudaBackendSymbol));
  }
  BackendOrStatus backend = absl::UnknownError("the CUDA backend module returned nothing");
  create(config, max_state_slots, &backend);
  return backend;
}
#else
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const ModelConfig&, int64_t) {
  return absl::FailedPreconditionError("this build of sympow has no CUDA backend (no nvcc)");
}
#endif

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
