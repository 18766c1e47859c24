#include "server/event_delivery.h"

namespace sympow::server {

EventDelivery::EventDelivery() : thread_([this] { Loop(); }) {}

EventDelivery::~EventDelivery() {
  Flush();
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

void EventDelivery::Add(std::shared_ptr<Request> request, RequestEvent event) {
  collecting_.emplace_back(std::move(request), std::move(event));
}

void EventDelivery::Flush() {
  if (collecting_.empty()) return;
  absl::MutexLock lock(&mutex_);
  batches_.push_back(std::move(collecting_));
  collecting_.clear();
}

void EventDelivery::Loop() {
  while (true) {
    Batch batch;
    {
      absl::MutexLock lock(&mutex_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mutex_) {
        return stopping_ || !batches_.empty();
      };
      mutex_.Await(absl::Condition(&ready));
      if (batches_.empty()) return;  // stopping, and all delivered
      batch = std::move(batches_.front());
      batches_.pop_front();
    }
    for (auto& [request, event] : batch) request->events.Push(std::move(event));
  }
}

}  // namespace sympow::server
