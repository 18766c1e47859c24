// Picks and builds the backend a program asked for with --device.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/backend.h"
#include "model/config.h"

namespace sympow {

// "cpu", "cuda", or "auto": CUDA when this build has it and a GPU is present, else the CPU.
// Errors name the device and why it cannot serve (no CUDA in this build, no GPU, a shape the
// kernels do not cover, states that do not fit).
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(absl::string_view device,
                                                       const ModelConfig& config,
                                                       int64_t max_state_slots);

}  // namespace sympow
