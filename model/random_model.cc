#include "model/random_model.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "model/safetensors_writer.h"
#include "model/weights.h"

namespace sympow {

absl::Status WriteRandomModel(const std::string& dir, const ModelConfig& config, uint64_t seed,
                              DType dtype) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return absl::PermissionDeniedError(absl::StrCat(dir, ": ", error.message()));
  std::ofstream(std::filesystem::path(dir) / "config.json") << ModelConfigToJson(config);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<TensorToWrite> tensors;
  for (const TensorSpec& spec : ModelTensorSpecs(config)) {
    int64_t count = 1;
    for (int64_t extent : spec.shape) count *= extent;
    const float fan_in = static_cast<float>(spec.shape.back());
    std::vector<float> values(count);
    for (float& value : values) {
      const float x = normal(rng);
      switch (spec.role) {
        case TensorRole::kEmbedding:
          value = x;
          break;
        case TensorRole::kProjection:
          value = x / std::sqrt(fan_in);
          break;
        case TensorRole::kGateProjection:
          value = 0.5f * x / std::sqrt(fan_in);
          break;
        case TensorRole::kNormWeight:
          value = 1.0f + 0.1f * x;
          break;
        case TensorRole::kBias:
          value = 0.1f * x;
          break;
      }
    }
    tensors.push_back(MakeTensor(spec.name, dtype, spec.shape, values));
  }
  return WriteSafetensors((std::filesystem::path(dir) / "model.safetensors").string(), tensors,
                          {{"format", "pt"}});
}

}  // namespace sympow
