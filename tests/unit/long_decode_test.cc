// 100k tokens decoded one at a time from the state against one chunked prefill of the same tokens.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "model/random_model.h"
#include "tests/unit/model_files.h"
#include "tests/unit/oracle_cases.h"

namespace sympow {
namespace {

// A multiple of the 64-token decode buffer, so that the decoded state ends with its buffers folded.
constexpr int64_t kTokens = 100'032;
// Two fp32 pipelines that sum in different orders over 10^5 updates. Measured here: logits agree
// to 5e-7 (gated) and 1.5e-6 (ungated), states to 4e-7 and 2e-5 of their largest element; the
// bound leaves room for other BLAS kernels and thread counts.
constexpr double kTolerance = 1e-4;

// S and z of every layer and head (fp32), without the decode buffers.
std::vector<float> StateAsFloats(const StateLayout& layout, const std::vector<std::byte>& bytes) {
  std::vector<float> values(layout.Elements());
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  return values;
}

void CheckDecodeMatchesPrefill(bool gating) {
  testing::TempDir dir;
  ModelConfig config = testing::SmallConfig();
  config.vocab_size = 256;
  config.head_dim = 32;
  config.hidden_size = 64;
  config.num_kv_heads = 1;
  config.gating = gating;
  config.chunk_size = 64;
  ASSERT_TRUE(WriteRandomModel(dir.path(), config, 11).ok());
  auto engine = testing::MakeCpuEngine(dir.path());
  std::mt19937 rng(3);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(config.vocab_size - 1));
  std::vector<int32_t> tokens(kTokens);
  for (int32_t& t : tokens) t = token(rng);

  SessionId prefilled = engine->CreateSession().value();
  std::vector<float> prefill_logits = engine->Prefill(prefilled, tokens).value();

  SessionId decoded = engine->CreateSession().value();
  std::vector<float> decode_logits;
  for (int64_t t = 0; t < kTokens; ++t) {
    const DecodeInput input{decoded, tokens[t]};
    decode_logits = engine->Decode({&input, 1}).value();
    if (t % 10'000 == 0 || t == kTokens - 1) {
      for (float value : decode_logits) ASSERT_TRUE(std::isfinite(value)) << "token " << t;
    }
  }
  const double logit_error = testing::MaxRelativeError(decode_logits, prefill_logits);
  const StateLayout& layout = engine->backend().state_layout();
  const double state_error =
      testing::MaxRelativeError(StateAsFloats(layout, engine->ReadState(decoded).value()),
                                StateAsFloats(layout, engine->ReadState(prefilled).value()));
  std::cout << "gating=" << gating << ": after " << kTokens << " tokens, logits differ by "
            << logit_error << " and states by " << state_error << " (relative to their max)\n";
  EXPECT_LT(logit_error, kTolerance);
  EXPECT_LT(state_error, kTolerance);
}

TEST(LongDecode, DecodeMatchesPrefillAt100kTokensWithGating) { CheckDecodeMatchesPrefill(true); }
TEST(LongDecode, DecodeMatchesPrefillAt100kTokensWithoutGating) {
  CheckDecodeMatchesPrefill(false);
}

}  // namespace
}  // namespace sympow
