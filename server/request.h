// A Generate or Append request as the engine worker runs it, and the events it sends back.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "model/engine.h"
#include "model/sampler.h"
#include "server/event_queue.h"

namespace sympow::server {

enum class FinishReason { kLength, kStop, kCancelled, kShutdown };

struct TokenOutput {
  int32_t token = 0;
  float logprob = 0.0f;                                 // when logprobs were asked for
  std::vector<std::pair<int32_t, float>> top_logprobs;  // the most likely alternatives
};

// One message from the worker: text and tokens, prefill progress, or the end of the request.
struct RequestEvent {
  std::string text;
  std::vector<TokenOutput> tokens;
  int64_t prefilled_tokens = 0;  // for Append progress
  bool finished = false;
  FinishReason reason = FinishReason::kLength;
  absl::Status error;  // set when the request failed
  int64_t session_tokens = 0;
  absl::Time first_token_time = absl::InfinitePast();
};

struct Request {
  std::string id;  // for logs: the client's x-request-id, or one the server makes
  SessionId session = 0;
  bool ephemeral = false;       // the session ends with the request (no session id was given)
  std::vector<int32_t> prompt;  // appended to the session first
  bool generate = true;         // false: Append only
  SamplingParams sampling;
  int64_t max_new_tokens = 0;
  std::vector<std::string> stop_strings;
  bool logprobs = false;
  int32_t top_logprobs = 0;
  int32_t priority = 0;  // admission order among waiting requests (Scheduler)
  absl::Time arrival = absl::Now();

  std::atomic<bool> cancelled{false};  // set by the RPC handler; honoured within one step
  EventQueue<RequestEvent> events;
};

}  // namespace sympow::server
