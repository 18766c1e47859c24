// Writes a model directory with random weights for a config: benchmarks and tests use it.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "model/config.h"
#include "model/dtype.h"

namespace sympow {

// config.json + model.safetensors in `dir` (created if needed). Weights are scaled so
// activations stay O(1): projections N(0, 1/fan_in), norms near 1, gates near their bias.
absl::Status WriteRandomModel(const std::string& dir, const ModelConfig& config, uint64_t seed,
                              DType dtype = DType::kF32);

}  // namespace sympow
