#include "tests/unit/model_files.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sympow::testing {

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path_ = ::testing::TempDir() + "sympow_" + std::to_string(::getpid()) + "_" +
          std::to_string(counter++);
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() { std::filesystem::remove_all(path_); }

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ModelConfig SmallConfig() {
  ModelConfig c;
  c.vocab_size = 50;
  c.hidden_size = 32;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.intermediate_size = 48;
  c.degree = 2;
  c.chunk_size = 8;
  c.gating = true;
  c.gate_bias = 2.0;
  c.qk_norm = true;
  c.bos_token_id = 0;
  c.eos_token_id = 1;
  return c;
}

}  // namespace sympow::testing
