// A blocking queue between the engine worker (producer) and one RPC handler (consumer).
#pragma once

#include <deque>
#include <optional>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sympow::server {

template <typename Event>
class EventQueue {
 public:
  void Push(Event event) {
    absl::MutexLock lock(&mutex_);
    events_.push_back(std::move(event));
  }

  // The next event, or nullopt when none arrives within `timeout`.
  std::optional<Event> Pop(absl::Duration timeout) {
    absl::MutexLock lock(&mutex_);
    auto ready = [this] { return !events_.empty(); };
    if (!mutex_.AwaitWithTimeout(absl::Condition(&ready), timeout)) return std::nullopt;
    Event event = std::move(events_.front());
    events_.pop_front();
    return event;
  }

 private:
  absl::Mutex mutex_;
  std::deque<Event> events_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace sympow::server
