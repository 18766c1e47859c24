// The step scheduler: which sequences run in the next engine step, as plain data. It owns no
// engine and no clock: callers pass the time, and report back what each step did, so every
// decision is unit-tested without a model (tests/unit/scheduler_test.cc).
//
// Each step: cancelled sequences leave; waiting sequences are admitted while fewer than
// max_running run, best first (priority, raised by one for each priority_aging waited, then
// arrival, then id: FIFO within a priority, and no one starves); every running sequence that
// has a token to decode decodes (all together, one batch); the rest of the token budget goes to
// prefill chunks of running prompts in admission order, at least one chunk per step so that
// prompts progress under any decode load, and never more than prefill_chunk_tokens per
// sequence, so a 1M-token prompt delays the decoding streams by one chunk per step at most.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "absl/time/time.h"

namespace sympow::server {

using SequenceId = uint64_t;

struct SchedulerOptions {
  int64_t step_token_budget = 2048;    // decode rows + prefill tokens per step (soft, see above)
  int64_t prefill_chunk_tokens = 512;  // prompt tokens one sequence prefills per step at most
  int64_t max_running = 256;           // sequences admitted at once
  absl::Duration priority_aging = absl::Seconds(10);  // waiting this long counts one priority
};

// One row of a step: a sequence decodes its pending token, or prefills prompt[first, first+count).
struct StepRow {
  SequenceId sequence = 0;
  bool decode = false;
  int64_t first = 0;
  int64_t count = 1;

  bool operator==(const StepRow&) const = default;
};

struct StepPlan {
  std::vector<SequenceId> cancelled;  // dropped before this step (waiting or running)
  std::vector<SequenceId> admitted;   // moved from waiting to running for this step
  std::vector<StepRow> rows;          // decode rows, then prefill chunks
  int64_t tokens = 0;
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options) : options_(options) {}

  // A sequence with `prompt_tokens` to prefill before it decodes.
  void Add(SequenceId id, int64_t prompt_tokens, int priority, absl::Time arrival);
  // Drops the sequence at the next Plan, wherever it is.
  void Cancel(SequenceId id);
  StepPlan Plan(absl::Time now);

  // What a step did: `count` more prompt tokens prefilled; whether a token waits to be decoded;
  // the sequence is done (finished, failed) and leaves.
  void Prefilled(SequenceId id, int64_t count);
  void SetDecoding(SequenceId id, bool decoding);
  void Finish(SequenceId id);

  int64_t waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t running() const { return static_cast<int64_t>(running_.size()); }

 private:
  struct Sequence {
    int64_t prompt_tokens = 0;
    int64_t prefilled = 0;
    int priority = 0;
    absl::Time arrival;
    int64_t admitted_order = 0;
    bool decoding = false;
    bool cancelled = false;
  };

  // The waiting sequence to admit next at `now`.
  std::map<SequenceId, Sequence>::iterator BestWaiting(absl::Time now);
  Sequence* Running(SequenceId id);

  SchedulerOptions options_;
  std::map<SequenceId, Sequence> waiting_;
  std::map<SequenceId, Sequence> running_;
  int64_t admissions_ = 0;
};

}  // namespace sympow::server
