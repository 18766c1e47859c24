// Hands the engine worker's events to the RPC handlers from a thread of its own. Each event wakes
// the handler streaming it; after a step of a thousand decode rows that is a thousand wake-ups,
// which on the worker thread would hold back the next step (and every stream's next token).
// The worker collects a step's events and hands them over at once; one thread delivers every
// batch in the order it came, so each request's events keep their order.
#pragma once

#include <deque>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/request.h"

namespace sympow::server {

class EventDelivery {
 public:
  EventDelivery();
  ~EventDelivery();  // delivers everything handed over, then joins
  EventDelivery(const EventDelivery&) = delete;
  EventDelivery& operator=(const EventDelivery&) = delete;

  // Worker side: an event for `request`, delivered after the next Flush.
  void Add(std::shared_ptr<Request> request, RequestEvent event);
  // Worker side: hands everything added since the last Flush to the delivery thread.
  void Flush();

 private:
  using Batch = std::vector<std::pair<std::shared_ptr<Request>, RequestEvent>>;
  void Loop();

  Batch collecting_;  // the worker's, until Flush
  absl::Mutex mutex_;
  std::deque<Batch> batches_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace sympow::server
