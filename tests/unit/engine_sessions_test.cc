// Engine session bookkeeping: forks, deletes, limits and input validation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "model/cpu/cpu_backend.h"
#include "model/loss.h"
#include "model/random_model.h"
#include "model/sampler.h"
#include "tests/unit/model_files.h"
#include "tests/unit/oracle_cases.h"

namespace sympow {
namespace {

using ::testing::HasSubstr;

class EngineSessions : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteRandomModel(dir_.path(), testing::SmallConfig(), 5).ok());
    engine_ = testing::MakeCpuEngine(dir_.path(), {}, /*max_sessions=*/3);
    ASSERT_NE(engine_, nullptr);
  }

  testing::TempDir dir_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineSessions, ForkContinuesIndependently) {
  const std::vector<int32_t> prompt = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  SessionId original = engine_->CreateSession().value();
  ASSERT_TRUE(engine_->Prefill(original, prompt).ok());
  SessionId fork = engine_->ForkSession(original).value();
  EXPECT_EQ(engine_->SessionLength(fork).value(), 10);
  EXPECT_EQ(engine_->ReadState(fork).value(), engine_->ReadState(original).value());
  const DecodeInput a{original, 12}, b{fork, 13};
  std::vector<float> after_a = engine_->Decode({&a, 1}).value();
  std::vector<float> after_b = engine_->Decode({&b, 1}).value();
  EXPECT_NE(after_a, after_b);
  EXPECT_NE(engine_->ReadState(fork).value(), engine_->ReadState(original).value());
  EXPECT_EQ(engine_->SessionLength(original).value(), 11);
}

TEST_F(EngineSessions, RestoredSessionContinuesExactlyLikeTheOriginal) {
  SessionId original = engine_->CreateSession().value();
  ASSERT_TRUE(engine_->Prefill(original, std::vector<int32_t>{3, 4, 5, 6, 7}).ok());
  SessionId restored = engine_->RestoreSession(engine_->ReadState(original).value(), 5).value();
  EXPECT_EQ(engine_->SessionLength(restored).value(), 5);
  const DecodeInput a{original, 9}, b{restored, 9};
  EXPECT_EQ(engine_->Decode({&a, 1}).value(), engine_->Decode({&b, 1}).value());
  EXPECT_FALSE(engine_->RestoreSession(std::vector<std::byte>(10), 1).ok());
}

// A state restored with tokens in its decode buffers continues from them, folds them when they
// fill, and a state whose buffer counts are impossible is refused.
TEST_F(EngineSessions, RestoredDecodeBuffersContinueAndBadCountsAreRefused) {
  const int64_t buffer = engine_->backend().state_layout().buffer_tokens;
  SessionId original = engine_->CreateSession().value();
  ASSERT_TRUE(engine_->Prefill(original, std::vector<int32_t>{3, 4, 5, 6, 7}).ok());
  for (int32_t token = 0; token < 3; ++token) {
    const DecodeInput step{original, token};
    ASSERT_TRUE(engine_->Decode({&step, 1}).ok());
  }
  std::vector<std::byte> state = engine_->ReadState(original).value();
  SessionId restored = engine_->RestoreSession(state, 8).value();
  for (int64_t t = 0; t < buffer; ++t) {  // past the buffer's fold
    const DecodeInput a{original, 9}, b{restored, 9};
    ASSERT_EQ(engine_->Decode({&a, 1}).value(), engine_->Decode({&b, 1}).value()) << t;
  }
  EXPECT_EQ(engine_->ReadState(original).value(), engine_->ReadState(restored).value());
  const StateLayout& layout = engine_->backend().state_layout();
  for (const float count : {static_cast<float>(buffer), 1.5f, -1.0f}) {
    std::vector<std::byte> bad = state;
    std::memcpy(bad.data() + layout.BufferOffset(layout.num_layers - 1, 0), &count, sizeof count);
    absl::StatusOr<SessionId> refused = engine_->RestoreSession(bad, 8);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << count;
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr("decode buffer")) << count;
  }
}

TEST_F(EngineSessions, DeletedSessionsFreeTheirSlot) {
  std::vector<SessionId> sessions;
  for (int i = 0; i < 3; ++i) sessions.push_back(engine_->CreateSession().value());
  absl::StatusOr<SessionId> fourth = engine_->CreateSession();
  EXPECT_EQ(fourth.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(fourth.status().message()), HasSubstr("all 3 state slots"));
  ASSERT_TRUE(engine_->Prefill(sessions[0], std::vector<int32_t>{5, 6}).ok());
  ASSERT_TRUE(engine_->DeleteSession(sessions[0]).ok());
  SessionId reused = engine_->CreateSession().value();
  EXPECT_EQ(engine_->SessionLength(reused).value(), 0);
  const std::vector<std::byte> state = engine_->ReadState(reused).value();
  EXPECT_TRUE(
      std::all_of(state.begin(), state.end(), [](std::byte b) { return b == std::byte{0}; }));
  EXPECT_EQ(engine_->DeleteSession(sessions[0]).code(), absl::StatusCode::kNotFound);
}

TEST_F(EngineSessions, RejectsBadInputWithoutChangingTheSession) {
  SessionId session = engine_->CreateSession().value();
  ASSERT_TRUE(engine_->Prefill(session, std::vector<int32_t>{4, 5}).ok());
  const std::vector<std::byte> before = engine_->ReadState(session).value();

  absl::Status out_of_vocab = engine_->Prefill(session, std::vector<int32_t>{1, 50}).status();
  EXPECT_EQ(out_of_vocab.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out_of_vocab.message()),
              HasSubstr("tokens[1] = 50 is outside the vocabulary"));
  EXPECT_EQ(engine_->Prefill(session, std::vector<int32_t>{}).status().code(),
            absl::StatusCode::kInvalidArgument);

  const std::vector<DecodeInput> duplicate = {{session, 3}, {session, 4}};
  EXPECT_THAT(std::string(engine_->Decode(duplicate).status().message()),
              HasSubstr("appears twice"));
  const DecodeInput negative{session, -1};
  EXPECT_THAT(std::string(engine_->Decode({&negative, 1}).status().message()),
              HasSubstr("inputs[0].token"));
  const DecodeInput unknown{999, 3};
  EXPECT_EQ(engine_->Decode({&unknown, 1}).status().code(), absl::StatusCode::kNotFound);

  EXPECT_EQ(engine_->ReadState(session).value(), before);
  EXPECT_EQ(engine_->SessionLength(session).value(), 2);
}

// A serving step: one session's prompt chunk and another's decode token in one forward pass,
// with the next tokens sampled on the backend, against the same work done call by call.
TEST_F(EngineSessions, MixedStepMatchesSeparatePrefillAndDecode) {
  const std::vector<int32_t> history = {4, 5, 6}, chunk = {7, 8, 9, 10, 11};
  RowSampling greedy;
  greedy.temperature = 0.0f;
  SessionId a = engine_->CreateSession().value(), b = engine_->CreateSession().value();
  ASSERT_TRUE(engine_->Prefill(b, history).ok());
  const int32_t pending = 12;
  const std::vector<Engine::StepInput> step = {{a, chunk, &greedy, true},
                                               {b, {&pending, 1}, &greedy}};
  const Engine::StepResult mixed = engine_->Step(step).value();

  SessionId c = engine_->CreateSession().value();
  const std::vector<float> after_chunk = engine_->Prefill(c, chunk).value();
  EXPECT_EQ(mixed.logits, after_chunk);
  EXPECT_EQ(mixed.tokens[0].token, SampleRow(after_chunk, greedy));
  EXPECT_NEAR(mixed.tokens[0].logprob, -NegativeLogLikelihood(after_chunk, mixed.tokens[0].token),
              1e-6);
  EXPECT_EQ(engine_->ReadState(a).value(), engine_->ReadState(c).value());
  EXPECT_EQ(engine_->SessionLength(a).value(), 5);
  EXPECT_EQ(engine_->SessionLength(b).value(), 4);

  ASSERT_TRUE(engine_->DeleteSession(c).ok());
  SessionId d = engine_->CreateSession().value();
  ASSERT_TRUE(engine_->Prefill(d, history).ok());
  const DecodeInput decode{d, pending};
  const std::vector<float> after_decode = engine_->Decode({&decode, 1}).value();
  EXPECT_EQ(mixed.tokens[1].token, SampleRow(after_decode, greedy));
  EXPECT_EQ(engine_->ReadState(b).value(), engine_->ReadState(d).value());
}

TEST_F(EngineSessions, MixedStepNamesTheBadInput) {
  SessionId a = engine_->CreateSession().value();
  const std::vector<Engine::StepInput> empty = {{a, {}}};
  EXPECT_THAT(std::string(engine_->Step(empty).status().message()),
              HasSubstr("inputs[0].tokens is empty"));
  const std::vector<int32_t> bad = {1, 9999};
  const std::vector<Engine::StepInput> outside = {{a, bad}};
  EXPECT_THAT(std::string(engine_->Step(outside).status().message()),
              HasSubstr("inputs[0].tokens[1]"));
  EXPECT_EQ(engine_->SessionLength(a).value(), 0);
}

TEST(EngineCreate, RejectsABackendMadeForAnotherModel) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteRandomModel(dir.path(), testing::SmallConfig(), 5).ok());
  std::unique_ptr<LoadedModel> model = LoadModel(dir.path()).value();
  ModelConfig other = testing::SmallConfig();
  other.num_layers = 3;
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Create(*model, std::make_unique<CpuBackend>(other, 1), {});
  EXPECT_THAT(std::string(engine.status().message()), HasSubstr("was made for another model"));
  EXPECT_FALSE(
      Engine::Create(*model, std::make_unique<CpuBackend>(model->config, 1), {.chunk_size = -1})
          .ok());
}

TEST_F(EngineSessions, StateSizeFollowsTheLayout) {
  const StateLayout& layout = engine_->backend().state_layout();
  EXPECT_EQ(layout.expanded_dim, 136);  // C(17, 2) for head_dim 16
  EXPECT_EQ(layout.Bytes(), 2 * 2 * (136 * 16 + 136) * 4 + 2 * 2 * (4 + 64 * (1 + 2 * 16)) * 4);
  SessionId session = engine_->CreateSession().value();
  EXPECT_EQ(static_cast<int64_t>(engine_->ReadState(session).value().size()), layout.Bytes());
}

}  // namespace
}  // namespace sympow
