// The bundled model (models/sympow-tiny): its files load together and the C++ engine reproduces
// the PyTorch model's logits on the same exported weights.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>

#include "model/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tests/unit/oracle_cases.h"

namespace sympow {
namespace {

const std::string kModelDir = std::string(SYMPOW_SOURCE_DIR) + "/models/sympow-tiny";
const std::string kFixture = std::string(SYMPOW_SOURCE_DIR) + "/tests/fixtures/sympow_tiny_logits";

// Both sides read the same BF16 weights, widened exactly to fp32, so only fp32 arithmetic differs
// (PyTorch's chunked form against sympow's): measured ~1e-6 of the largest logit.
constexpr double kTolerance = 1e-4;

TEST(BundledModel, TokenizerFitsTheModel) {
  auto engine = testing::MakeCpuEngine(kModelDir);
  ASSERT_NE(engine, nullptr);
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadTokenizerForModel(kModelDir, engine->config().vocab_size);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), engine->config().vocab_size);
  EXPECT_EQ((*tokenizer)->TokenId("<|endoftext|>"), engine->config().eos_token_id);
  EXPECT_FALSE(LoadTokenizerForModel(kModelDir, 4096).ok());
}

TEST(BundledModel, CpuEngineMatchesPyTorchLogits) {
  std::ifstream meta_file(kFixture + ".json");
  const nlohmann::json meta = nlohmann::json::parse(meta_file);
  const int64_t vocab = meta["vocab_size"];
  std::ifstream rows_file(kFixture + ".f32", std::ios::binary | std::ios::ate);
  std::vector<float> expected(static_cast<size_t>(rows_file.tellg()) / sizeof(float));
  rows_file.seekg(0);
  rows_file.read(reinterpret_cast<char*>(expected.data()),
                 static_cast<std::streamsize>(expected.size() * 4));

  auto engine = testing::MakeCpuEngine(kModelDir);
  ASSERT_NE(engine, nullptr);
  size_t row = 0;
  double worst = 0.0;
  for (const auto& c : meta["cases"]) {
    const std::vector<int32_t> ids = c["ids"];
    SessionId session = engine->CreateSession().value();
    std::vector<float> logits = engine->Prefill(session, ids, LogitsFor::kEveryToken).value();
    for (int64_t position : c["positions"].get<std::vector<int64_t>>()) {
      std::span<const float> actual(logits.data() + position * vocab, vocab);
      std::span<const float> reference(expected.data() + row * vocab, vocab);
      worst = std::max(worst, testing::MaxRelativeError(actual, reference));
      EXPECT_LT(testing::MaxRelativeError(actual, reference), kTolerance)
          << c["prompt"] << " at position " << position;
      ++row;
    }
  }
  EXPECT_EQ(row * vocab, expected.size());
  std::cout << "largest relative logit error against PyTorch: " << worst << "\n";
}

}  // namespace
}  // namespace sympow
