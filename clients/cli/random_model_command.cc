// `sympow-cli random-model`: writes a model of a named shape with random weights.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "clients/cli/commands.h"
#include "model/random_model.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, out, "", "directory to write config.json and model.safetensors into");
ABSL_FLAG(std::string, preset, "tiny",
          "shape: 'tiny' (the bundled model's: hidden 256, 4 layers, 4×64 heads) or '124m'");
ABSL_FLAG(uint64_t, weights_seed, 1, "random seed for the weights");

namespace sympow::cli {
namespace {

// Shapes of MODEL.md; both use gating, qk-norm and degree 2.
bool PresetConfig(const std::string& preset, ModelConfig* c) {
  c->degree = 2;
  c->gating = true;
  c->gate_bias = 6.906768;
  c->qk_norm = true;
  c->head_dim = 64;
  c->bos_token_id = 0;
  c->eos_token_id = 0;
  if (preset == "tiny") {
    c->vocab_size = 8192;
    c->hidden_size = 256;
    c->num_layers = 4;
    c->num_heads = c->num_kv_heads = 4;
    c->intermediate_size = 768;
    c->chunk_size = 128;
    c->tie_word_embeddings = true;
    return true;
  }
  if (preset == "124m") {
    c->vocab_size = 50304;
    c->hidden_size = 768;
    c->num_layers = 12;
    c->num_heads = c->num_kv_heads = 12;
    c->intermediate_size = 2048;
    c->chunk_size = 128;
    return true;
  }
  return false;
}

}  // namespace

int RunRandomModel() {
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::fprintf(stderr, "error: --out is required\n");
    return 2;
  }
  ModelConfig config;
  if (!PresetConfig(absl::GetFlag(FLAGS_preset), &config)) {
    std::fprintf(stderr, "error: --preset must be 'tiny' or '124m', got '%s'\n",
                 absl::GetFlag(FLAGS_preset).c_str());
    return 2;
  }
  if (absl::Status status = WriteRandomModel(out, config, absl::GetFlag(FLAGS_weights_seed));
      !status.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  spdlog::info("wrote a random '{}' model to {}", absl::GetFlag(FLAGS_preset), out);
  return 0;
}

}  // namespace sympow::cli
