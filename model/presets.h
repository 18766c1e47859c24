// Named model shapes of MODEL.md (bundled model, 124M-class, 14B-class) for random-weight runs.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config.h"

namespace sympow {

// "tiny", "124m" or "14b": degree 2, gating and qk-norm on, fp32 state.
absl::StatusOr<ModelConfig> PresetConfig(const std::string& name);
std::vector<std::string> PresetNames();

}  // namespace sympow
