// `sympow-cli random-model`: writes a model of a named shape with random weights.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "clients/cli/commands.h"
#include "model/presets.h"
#include "model/random_model.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, out, "", "directory to write config.json and model.safetensors into");
ABSL_FLAG(std::string, preset, "tiny",
          "shape of MODEL.md: 'tiny' (the bundled model's), '124m' or '14b'");
ABSL_FLAG(uint64_t, weights_seed, 1, "random seed for the weights");

namespace sympow::cli {

int RunRandomModel() {
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::fprintf(stderr, "error: --out is required\n");
    return 2;
  }
  absl::StatusOr<ModelConfig> config = PresetConfig(absl::GetFlag(FLAGS_preset));
  if (!config.ok()) {
    std::fprintf(stderr, "error: --preset: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  if (absl::Status status = WriteRandomModel(out, *config, absl::GetFlag(FLAGS_weights_seed));
      !status.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  spdlog::info("wrote a random '{}' model to {}", absl::GetFlag(FLAGS_preset), out);
  return 0;
}

}  // namespace sympow::cli
