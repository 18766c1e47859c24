// Session states beyond the backend's slots: moved to host memory and spill files and back,
// bit for bit, with the same logits as an engine that never moved them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/random_model.h"
#include "tests/unit/model_files.h"
#include "tests/unit/oracle_cases.h"

namespace sympow {
namespace {

using ::testing::HasSubstr;

class StateTiersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteRandomModel(dir_.path(), testing::SmallConfig(), 5).ok());
  }
  // An engine with `slots` backend slots and the given tiers.
  std::unique_ptr<Engine> MakeEngine(int64_t slots, int64_t host_states, bool disk) {
    EngineOptions options;
    auto probe = testing::MakeCpuEngine(dir_.path(), {}, 1);
    options.state_tiers.host_bytes = host_states * probe->backend().state_layout().Bytes();
    if (disk) options.state_tiers.spill_dir = spill_.path();
    return testing::MakeCpuEngine(dir_.path(), options, slots);
  }
  static std::vector<int32_t> Prompt(int i) {
    std::vector<int32_t> prompt;
    for (int t = 0; t < 20 + i; ++t) prompt.push_back(2 + (t * 7 + i * 3) % 45);
    return prompt;
  }

  testing::TempDir dir_;
  testing::TempDir spill_;
};

// Five sessions on two slots, one host state and spill files: every step moves states between
// all three tiers, and the logits match an engine with a slot for everyone.
TEST_F(StateTiersTest, SessionsBeyondTheSlotsGiveTheSameLogitsAsResidentOnes) {
  auto tiered = MakeEngine(2, 1, true);
  auto resident = MakeEngine(8, 0, false);
  std::vector<SessionId> a, b;
  for (int i = 0; i < 5; ++i) {
    a.push_back(tiered->CreateSession().value());
    b.push_back(resident->CreateSession().value());
    EXPECT_EQ(tiered->Prefill(a[i], Prompt(i)).value(), resident->Prefill(b[i], Prompt(i)).value());
  }
  StateTierCounts counts = tiered->TierCounts();
  EXPECT_EQ(counts.device, 2);
  EXPECT_EQ(counts.host, 1);
  EXPECT_EQ(counts.disk, 2);
  for (int step = 0; step < 3; ++step) {
    for (int i = 0; i < 5; ++i) {
      const DecodeInput x{a[i], 7 + step}, y{b[i], 7 + step};
      EXPECT_EQ(tiered->Decode({&x, 1}).value(), resident->Decode({&y, 1}).value());
    }
  }
  // A batch of two (all the slots there are) decodes together.
  const DecodeInput pair[] = {{a[0], 3}, {a[4], 4}};
  const DecodeInput same[] = {{b[0], 3}, {b[4], 4}};
  EXPECT_EQ(tiered->Decode(pair).value(), resident->Decode(same).value());
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(tiered->ReadState(a[i]).value(), resident->ReadState(b[i]).value());
}

TEST_F(StateTiersTest, TheLeastRecentlyUsedStateMovesFirst) {
  auto engine = MakeEngine(2, 4, false);
  const SessionId first = engine->CreateSession().value();
  const SessionId second = engine->CreateSession().value();
  ASSERT_TRUE(engine->Prefill(first, Prompt(0)).ok());  // first is now the more recent
  const SessionId third = engine->CreateSession().value();
  EXPECT_EQ(engine->SessionTier(second).value(), StateTier::kHost);
  EXPECT_EQ(engine->SessionTier(first).value(), StateTier::kDevice);
  EXPECT_EQ(engine->SessionTier(third).value(), StateTier::kDevice);
}

TEST_F(StateTiersTest, ForksAndDeletesWorkInEveryTier) {
  auto engine = MakeEngine(1, 1, true);
  const SessionId source = engine->CreateSession().value();
  ASSERT_TRUE(engine->Prefill(source, Prompt(1)).ok());
  const std::vector<std::byte> state = engine->ReadState(source).value();
  const SessionId other = engine->CreateSession().value();  // source goes to host
  const SessionId third = engine->CreateSession().value();  // source goes to disk
  EXPECT_EQ(engine->SessionTier(source).value(), StateTier::kDisk);
  EXPECT_EQ(engine->ReadState(source).value(), state);  // read from the spill file
  const SessionId fork = engine->ForkSession(source).value();
  EXPECT_EQ(engine->ReadState(fork).value(), state);
  EXPECT_EQ(engine->SessionLength(fork).value(), engine->SessionLength(source).value());
  for (SessionId id : {other, third, fork, source}) EXPECT_TRUE(engine->DeleteSession(id).ok());
  EXPECT_TRUE(std::filesystem::is_empty(spill_.path()));
}

TEST_F(StateTiersTest, WithoutHostOrDiskTiersAFullPoolIsResourceExhausted) {
  auto engine = MakeEngine(2, 0, false);
  ASSERT_TRUE(engine->CreateSession().ok());
  ASSERT_TRUE(engine->CreateSession().ok());
  absl::StatusOr<SessionId> third = engine->CreateSession();
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.status().message(), HasSubstr("no host or disk tier"));
}

TEST_F(StateTiersTest, ABatchLargerThanTheSlotsIsResourceExhausted) {
  auto engine = MakeEngine(2, 4, false);
  std::vector<DecodeInput> batch;
  for (int i = 0; i < 3; ++i) batch.push_back({engine->CreateSession().value(), 5});
  absl::StatusOr<std::vector<float>> logits = engine->Decode(batch);
  EXPECT_EQ(logits.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(logits.status().message(), HasSubstr("current call"));
}

TEST_F(StateTiersTest, StatesInUseAreNeverMovedOutForOthers) {
  auto engine = MakeEngine(2, 4, true);
  const SessionId a = engine->CreateSession().value();
  const SessionId b = engine->CreateSession().value();
  engine->SetInUse(a, true);
  engine->SetInUse(b, true);
  absl::StatusOr<SessionId> c = engine->CreateSession();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(c.status().message(), HasSubstr("running requests"));
  EXPECT_THAT(c.status().message(), HasSubstr("retry"));
  EXPECT_EQ(engine->SessionTier(a).value(), StateTier::kDevice);
  engine->SetInUse(b, false);
  ASSERT_TRUE(engine->CreateSession().ok());
  EXPECT_EQ(engine->SessionTier(a).value(), StateTier::kDevice);
  EXPECT_EQ(engine->SessionTier(b).value(), StateTier::kHost);
}

TEST_F(StateTiersTest, ACorruptSpillFileIsDataLossNamingTheFile) {
  auto engine = MakeEngine(1, 0, true);
  const SessionId spilled = engine->CreateSession().value();
  ASSERT_TRUE(engine->Prefill(spilled, Prompt(2)).ok());
  ASSERT_TRUE(engine->CreateSession().ok());
  ASSERT_EQ(engine->SessionTier(spilled).value(), StateTier::kDisk);
  for (const auto& file : std::filesystem::directory_iterator(spill_.path())) {
    std::fstream f(file.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  absl::StatusOr<std::vector<float>> logits = engine->Prefill(spilled, Prompt(0));
  EXPECT_EQ(logits.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(logits.status().message(), HasSubstr(".spill"));
}

}  // namespace
}  // namespace sympow
