// The CPU engine against the float64 oracle (tests/reference) for every generated model.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "tests/unit/oracle_cases.h"

namespace sympow {
namespace {

using testing::MakeCpuEngine;
using testing::MaxRelativeError;
using testing::OracleCase;

// fp32 activations and state against float64: the bound for fp32 state.
constexpr double kFp32Tolerance = 1e-4;
// bf16 state storage keeps 8 significant bits of S and z: about 2^-8 relative per rounding.
constexpr double kBf16StateTolerance = 2e-2;

double ToleranceFor(const OracleCase& c) {
  return c.name.find("bf16_state") != std::string::npos ? kBf16StateTolerance : kFp32Tolerance;
}

class OracleAgreement : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cases_ = new std::vector<OracleCase>(testing::LoadOracleCases()); }
  static void TearDownTestSuite() { delete cases_; }
  static const std::vector<OracleCase>& cases() { return *cases_; }

  static std::vector<OracleCase>* cases_;
};
std::vector<OracleCase>* OracleAgreement::cases_ = nullptr;

TEST_F(OracleAgreement, PrefillLogitsMatchAtChunkBoundaryLengths) {
  ASSERT_FALSE(cases().empty());
  for (const OracleCase& c : cases()) {
    auto engine = MakeCpuEngine(c.dir);
    ASSERT_NE(engine, nullptr);
    const int64_t chunk = engine->chunk_size();
    for (int64_t length : {int64_t{1}, chunk - 1, chunk, chunk + 1, 5 * chunk + 3}) {
      SessionId session = engine->CreateSession().value();
      absl::StatusOr<std::vector<float>> logits =
          engine->Prefill(session, std::span(c.tokens).first(length), LogitsFor::kEveryToken);
      ASSERT_TRUE(logits.ok()) << logits.status();
      EXPECT_LT(MaxRelativeError(*logits, c.LogitsAt(0, length)), ToleranceFor(c))
          << c.name << " length " << length;
      ASSERT_TRUE(engine->DeleteSession(session).ok());
    }
  }
}

TEST_F(OracleAgreement, DecodeAfterPrefillMatchesTheFollowingPositions) {
  for (const OracleCase& c : cases()) {
    auto engine = MakeCpuEngine(c.dir);
    SessionId session = engine->CreateSession().value();
    std::vector<float> last =
        engine->Prefill(session, std::span(c.tokens).first(c.prompt_length)).value();
    EXPECT_LT(MaxRelativeError(last, c.LogitsAt(c.prompt_length - 1, 1)), ToleranceFor(c))
        << c.name;
    for (int64_t t = c.prompt_length; t < static_cast<int64_t>(c.tokens.size()); ++t) {
      const DecodeInput input{session, c.tokens[t]};
      std::vector<float> logits = engine->Decode({&input, 1}).value();
      EXPECT_LT(MaxRelativeError(logits, c.LogitsAt(t, 1)), ToleranceFor(c))
          << c.name << " at " << t;
    }
  }
}

TEST_F(OracleAgreement, SplitPrefillEqualsOnePrefill) {
  for (const OracleCase& c : cases()) {
    auto engine = MakeCpuEngine(c.dir);
    const int64_t n = c.prompt_length;
    for (int64_t split : {int64_t{1}, n / 3, n - 1}) {
      SessionId session = engine->CreateSession().value();
      std::vector<float> first =
          engine->Prefill(session, std::span(c.tokens).first(split), LogitsFor::kEveryToken)
              .value();
      std::vector<float> second =
          engine
              ->Prefill(session, std::span(c.tokens).subspan(split, n - split),
                        LogitsFor::kEveryToken)
              .value();
      first.insert(first.end(), second.begin(), second.end());
      EXPECT_EQ(engine->SessionLength(session).value(), n);
      EXPECT_LT(MaxRelativeError(first, c.LogitsAt(0, n)), ToleranceFor(c))
          << c.name << " split " << split;
    }
  }
}

TEST_F(OracleAgreement, ResultsDoNotDependOnChunkSize) {
  for (const OracleCase& c : cases()) {
    const int64_t n = c.prompt_length;
    std::vector<std::vector<float>> states;
    for (int64_t chunk : {1, 3, 7, 64, 1000}) {
      // A small batch-token cap also splits the prompt across forward passes.
      auto engine =
          MakeCpuEngine(c.dir, EngineOptions{.chunk_size = chunk, .max_batch_tokens = 13});
      SessionId session = engine->CreateSession().value();
      std::vector<float> logits =
          engine->Prefill(session, std::span(c.tokens).first(n), LogitsFor::kEveryToken).value();
      EXPECT_LT(MaxRelativeError(logits, c.LogitsAt(0, n)), ToleranceFor(c))
          << c.name << " chunk " << chunk;
    }
  }
}

// q, k, v and the gate as one stacked GEMM split by columns (short passes) or as four GEMMs on
// views of the stack (long passes): each way, prefill and decode against the oracle.
TEST_F(OracleAgreement, StackedAndSeparateProjectionsBothMatch) {
  for (const OracleCase& c : cases()) {
    const int64_t n = c.prompt_length;
    for (int64_t stacked_rows : {int64_t{0}, int64_t{1} << 20}) {
      auto engine = MakeCpuEngine(c.dir, EngineOptions{.stacked_projection_rows = stacked_rows});
      SessionId session = engine->CreateSession().value();
      std::vector<float> logits =
          engine->Prefill(session, std::span(c.tokens).first(n), LogitsFor::kEveryToken).value();
      EXPECT_LT(MaxRelativeError(logits, c.LogitsAt(0, n)), ToleranceFor(c))
          << c.name << " stacked up to " << stacked_rows << " rows";
      const DecodeInput next{session, c.tokens[n]};
      std::vector<float> decoded = engine->Decode({&next, 1}).value();
      EXPECT_LT(MaxRelativeError(decoded, c.LogitsAt(n, 1)), ToleranceFor(c))
          << c.name << " decode, stacked up to " << stacked_rows << " rows";
    }
  }
}

TEST_F(OracleAgreement, BatchedDecodeEqualsEachSessionAlone) {
  for (const OracleCase& c : cases()) {
    auto engine = MakeCpuEngine(c.dir);
    const int64_t vocab = c.vocab_size;
    // Three sessions at different depths of the same text, decoded together and then alone.
    const std::vector<int64_t> depths = {3, 11, c.prompt_length};
    std::vector<SessionId> together, alone;
    for (int64_t depth : depths) {
      for (auto* group : {&together, &alone}) {
        group->push_back(engine->CreateSession().value());
        ASSERT_TRUE(engine->Prefill(group->back(), std::span(c.tokens).first(depth)).ok());
      }
    }
    for (int step = 0; step < 3; ++step) {
      std::vector<DecodeInput> batch;
      for (size_t i = 0; i < depths.size(); ++i)
        batch.push_back({together[i], c.tokens[depths[i] + step]});
      std::vector<float> batched = engine->Decode(batch).value();
      for (size_t i = 0; i < depths.size(); ++i) {
        const DecodeInput input{alone[i], batch[i].token};
        std::vector<float> single = engine->Decode({&input, 1}).value();
        std::span<const float> row(batched.data() + i * vocab, vocab);
        EXPECT_EQ(std::vector<float>(row.begin(), row.end()), single) << c.name << " session " << i;
        EXPECT_LT(MaxRelativeError(single, c.LogitsAt(depths[i] + step, 1)), ToleranceFor(c))
            << c.name;
      }
    }
  }
}

}  // namespace
}  // namespace sympow
