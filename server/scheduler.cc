#include "server/scheduler.h"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace sympow::server {

void Scheduler::Add(SequenceId id, int64_t prompt_tokens, int priority, absl::Time arrival) {
  waiting_[id] = Sequence{.prompt_tokens = prompt_tokens, .priority = priority, .arrival = arrival};
}

void Scheduler::Cancel(SequenceId id) {
  if (auto it = waiting_.find(id); it != waiting_.end()) it->second.cancelled = true;
  if (Sequence* sequence = Running(id)) sequence->cancelled = true;
}

std::map<SequenceId, Scheduler::Sequence>::iterator Scheduler::BestWaiting(absl::Time now) {
  auto rank = [&](const std::pair<const SequenceId, Sequence>& entry) {
    const Sequence& s = entry.second;
    const double waited = absl::ToDoubleSeconds(now - s.arrival);
    const double aging = absl::ToDoubleSeconds(options_.priority_aging);
    const int64_t raised =
        aging > 0 ? static_cast<int64_t>(std::floor(std::max(0.0, waited) / aging)) : 0;
    // Higher effective priority first, then earlier arrival, then lower id.
    return std::make_tuple(-(s.priority + raised), s.arrival, entry.first);
  };
  return std::min_element(waiting_.begin(), waiting_.end(),
                          [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
}

Scheduler::Sequence* Scheduler::Running(SequenceId id) {
  auto it = running_.find(id);
  return it == running_.end() ? nullptr : &it->second;
}

StepPlan Scheduler::Plan(absl::Time now) {
  StepPlan plan;
  for (auto* queue : {&waiting_, &running_}) {
    std::erase_if(*queue, [&](const auto& entry) {
      if (entry.second.cancelled) plan.cancelled.push_back(entry.first);
      return entry.second.cancelled;
    });
  }
  while (running() < options_.max_running && !waiting_.empty()) {
    auto best = BestWaiting(now);
    best->second.admitted_order = admissions_++;
    plan.admitted.push_back(best->first);
    running_.insert(waiting_.extract(best));
  }
  for (const auto& [id, sequence] : running_) {
    if (!sequence.decoding) continue;
    plan.rows.push_back({id, true, 0, 1});
    ++plan.tokens;
  }
  std::vector<std::pair<int64_t, SequenceId>> prompts;  // in admission order
  for (const auto& [id, sequence] : running_) {
    if (sequence.prefilled < sequence.prompt_tokens)
      prompts.emplace_back(sequence.admitted_order, id);
  }
  std::sort(prompts.begin(), prompts.end());
  int64_t budget = options_.step_token_budget - plan.tokens;
  bool any_prefill = false;
  for (const auto& [order, id] : prompts) {
    const Sequence& sequence = running_.at(id);
    int64_t count =
        std::min(sequence.prompt_tokens - sequence.prefilled, options_.prefill_chunk_tokens);
    if (any_prefill) count = std::min(count, budget);
    if (count <= 0) break;
    plan.rows.push_back({id, false, sequence.prefilled, count});
    plan.tokens += count;
    budget -= count;
    any_prefill = true;
  }
  return plan;
}

void Scheduler::Prefilled(SequenceId id, int64_t count) {
  if (Sequence* sequence = Running(id)) sequence->prefilled += count;
}

void Scheduler::SetDecoding(SequenceId id, bool decoding) {
  if (Sequence* sequence = Running(id)) sequence->decoding = decoding;
}

void Scheduler::Finish(SequenceId id) {
  waiting_.erase(id);
  running_.erase(id);
}

}  // namespace sympow::server
