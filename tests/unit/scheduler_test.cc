// The step scheduler's decisions, with no model and a fake clock.
#include "server/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sympow::server {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kStart = absl::FromUnixSeconds(1'000'000);

absl::Time At(double seconds) { return kStart + absl::Seconds(seconds); }

StepRow Decode(SequenceId id) { return {id, true, 0, 1}; }
StepRow Prefill(SequenceId id, int64_t first, int64_t count) { return {id, false, first, count}; }

// Runs a plan as an engine would: prefill rows advance, finished prompts start decoding.
void Execute(Scheduler& scheduler, const StepPlan& plan,
             const std::map<SequenceId, int64_t>& prompts) {
  for (const StepRow& row : plan.rows) {
    if (row.decode) continue;
    scheduler.Prefilled(row.sequence, row.count);
    if (row.first + row.count == prompts.at(row.sequence))
      scheduler.SetDecoding(row.sequence, true);
  }
}

TEST(Scheduler, AdmitsInArrivalOrderWithinAPriorityAndHigherPriorityFirst) {
  Scheduler scheduler({.max_running = 2});
  scheduler.Add(1, 10, 0, At(0));
  scheduler.Add(2, 10, 0, At(1));
  scheduler.Add(3, 10, 5, At(2));
  const StepPlan plan = scheduler.Plan(At(3));
  EXPECT_THAT(plan.admitted, ElementsAre(3, 1));
  EXPECT_EQ(scheduler.waiting(), 1);
  scheduler.Finish(3);
  EXPECT_THAT(scheduler.Plan(At(4)).admitted, ElementsAre(2));
}

TEST(Scheduler, WaitingRaisesPrioritySoLowPriorityWorkIsNotStarved) {
  Scheduler scheduler({.max_running = 1, .priority_aging = absl::Seconds(10)});
  scheduler.Add(1, 10, 0, At(0));  // runs
  scheduler.Plan(At(0));
  scheduler.Add(2, 10, 0, At(1));   // low priority, waits
  scheduler.Add(3, 10, 2, At(25));  // arrives later with priority 2
  scheduler.Finish(1);
  // At t = 26, sequence 2 has waited 25 s: priority 0 + 2 = 2, ties 3's and arrived first.
  EXPECT_THAT(scheduler.Plan(At(26)).admitted, ElementsAre(2));
}

TEST(Scheduler, WithoutAgingAHigherPriorityArrivalGoesFirst) {
  Scheduler scheduler({.max_running = 1, .priority_aging = absl::Seconds(100)});
  scheduler.Add(1, 10, 0, At(0));
  scheduler.Plan(At(0));
  scheduler.Add(2, 10, 0, At(1));
  scheduler.Add(3, 10, 2, At(25));
  scheduler.Finish(1);
  EXPECT_THAT(scheduler.Plan(At(26)).admitted, ElementsAre(3));
}

TEST(Scheduler, AllDecodingSequencesDecodeTogetherAndPromptsFillTheRestOfTheBudget) {
  Scheduler scheduler({.step_token_budget = 100, .prefill_chunk_tokens = 64});
  const std::map<SequenceId, int64_t> prompts = {{1, 3}, {2, 5}, {3, 200}, {4, 200}};
  for (const auto& [id, tokens] : prompts) scheduler.Add(id, tokens, 0, At(id));
  StepPlan first = scheduler.Plan(At(10));
  // Budget 100: 3 + 5 + 64 (chunk cap) + 28 (what is left).
  EXPECT_THAT(first.rows, ElementsAre(Prefill(1, 0, 3), Prefill(2, 0, 5), Prefill(3, 0, 64),
                                      Prefill(4, 0, 28)));
  EXPECT_EQ(first.tokens, 100);
  Execute(scheduler, first, prompts);
  StepPlan second = scheduler.Plan(At(11));
  EXPECT_THAT(second.rows,
              ElementsAre(Decode(1), Decode(2), Prefill(3, 64, 64), Prefill(4, 28, 34)));
}

TEST(Scheduler, AMillionTokenPromptDelaysDecodingByOneChunkPerStep) {
  Scheduler scheduler({.step_token_budget = 2048, .prefill_chunk_tokens = 512});
  const std::map<SequenceId, int64_t> prompts = {{1, 1 << 20}, {2, 4}};
  scheduler.Add(1, 1 << 20, 0, At(0));
  scheduler.Add(2, 4, 0, At(1));
  Execute(scheduler, scheduler.Plan(At(1)), prompts);
  for (int step = 0; step < 100; ++step) {
    const StepPlan plan = scheduler.Plan(At(2 + step));
    ASSERT_EQ(plan.rows.size(), 2u);
    EXPECT_EQ(plan.rows[0], Decode(2));  // the short request decodes every step
    EXPECT_EQ(plan.rows[1].sequence, 1u);
    EXPECT_LE(plan.rows[1].count, 512);
    Execute(scheduler, plan, prompts);
  }
}

TEST(Scheduler, PromptsStillProgressWhenDecodingFillsTheBudget) {
  Scheduler scheduler({.step_token_budget = 4, .prefill_chunk_tokens = 16});
  std::map<SequenceId, int64_t> prompts;
  for (SequenceId id = 1; id <= 8; ++id) {
    prompts[id] = 1;
    scheduler.Add(id, 1, 0, At(0));
  }
  // Eight decoding sequences use the whole budget of 4, yet one prompt chunk runs every step.
  int steps = 0;
  for (StepPlan plan = scheduler.Plan(At(0)); !plan.rows.back().decode;
       plan = scheduler.Plan(At(++steps))) {
    Execute(scheduler, plan, prompts);
  }
  EXPECT_EQ(steps, 5);  // four prompts fit the first step, then one more per step
  prompts[9] = 100;
  scheduler.Add(9, 100, 0, At(10));
  const StepPlan plan = scheduler.Plan(At(10));
  EXPECT_EQ(plan.tokens, 8 + 16);
  EXPECT_EQ(plan.rows.back(), Prefill(9, 0, 16));
}

TEST(Scheduler, CancellationTakesEffectAtTheNextStepWhereverTheSequenceIs) {
  Scheduler scheduler({.max_running = 1});
  const std::map<SequenceId, int64_t> prompts = {{1, 2}, {2, 2}};
  scheduler.Add(1, 2, 0, At(0));
  scheduler.Add(2, 2, 0, At(1));
  Execute(scheduler, scheduler.Plan(At(1)), prompts);
  scheduler.Cancel(1);  // running and decoding
  scheduler.Cancel(2);  // waiting
  const StepPlan plan = scheduler.Plan(At(2));
  EXPECT_THAT(plan.cancelled, ElementsAre(2, 1));
  EXPECT_THAT(plan.rows, IsEmpty());
  EXPECT_EQ(scheduler.running() + scheduler.waiting(), 0);
}

TEST(Scheduler, FinishedSequencesFreeTheirPlace) {
  Scheduler scheduler({.max_running = 1});
  scheduler.Add(1, 0, 0, At(0));
  scheduler.Add(2, 0, 0, At(1));
  EXPECT_THAT(scheduler.Plan(At(1)).admitted, ElementsAre(1));
  EXPECT_THAT(scheduler.Plan(At(2)).admitted, IsEmpty());
  scheduler.Finish(1);
  EXPECT_THAT(scheduler.Plan(At(3)).admitted, ElementsAre(2));
}

}  // namespace
}  // namespace sympow::server
