// `sympow-cli random-model`: writes a model of a named shape with random weights.
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/flags/flag.h"
#include "clients/cli/cli_flags.h"
#include "clients/cli/commands.h"
#include "model/presets.h"
#include "model/random_model.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, out, "", "directory to write config.json and model.safetensors into");
ABSL_FLAG(std::string, preset, "tiny",
          "shape of MODEL.md: 'tiny' (the bundled model's), '124m' or '14b'");
ABSL_FLAG(uint64_t, weights_seed, 1, "random seed for the weights");
ABSL_FLAG(std::string, tokenizer, "",
          "a tokenizer.json to copy beside the weights (its vocabulary may be smaller than the "
          "model's), so that sympow-server can serve the model");

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
  if (absl::Status overridden = OverrideStateDType(*config); !overridden.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(overridden.message()).c_str());
    return 2;
  }
  if (absl::Status status = WriteRandomModel(out, *config, absl::GetFlag(FLAGS_weights_seed));
      !status.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  if (const std::string tokenizer = absl::GetFlag(FLAGS_tokenizer); !tokenizer.empty()) {
    std::error_code error;
    std::filesystem::copy_file(tokenizer, std::filesystem::path(out) / "tokenizer.json",
                               std::filesystem::copy_options::overwrite_existing, error);
    if (error) {
      std::fprintf(stderr, "error: --tokenizer %s: %s\n", tokenizer.c_str(),
                   error.message().c_str());
      return 1;
    }
  }
  spdlog::info("wrote a random '{}' model to {}", absl::GetFlag(FLAGS_preset), out);
  return 0;
}

}  // namespace sympow::cli
