// The one symbol the CUDA backend module exports, shared by the module and its loader.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "model/backend.h"
#include "model/config.h"

namespace sympow {
using BackendOrStatus = absl::StatusOr<std::unique_ptr<Backend>>;
}  // namespace sympow

// Makes a CudaBackend (or says why not) into *result.
extern "C" void SympowCreateCudaBackend(const sympow::ModelConfig& config, int64_t max_state_slots,
                                        sympow::BackendOrStatus* result);
using SympowCreateCudaBackendFn = decltype(&SympowCreateCudaBackend);

inline constexpr char kSympowCreateCudaBackendSymbol[] = "SympowCreateCudaBackend";
