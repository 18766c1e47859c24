// One simulated chat user: a session from the shared system prompt, an optional long document,
// then turns of a user message and a streamed reply, timing every token as it arrives.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "clients/loadgen/workload.h"
#include "sympow/v1/sympow.grpc.pb.h"

namespace sympow::loadgen {

struct UserTimings {
  std::vector<double> ttft_ms;  // per turn: request sent → first token
  std::vector<double> itl_ms;   // gaps between consecutive token deltas within a reply
  int64_t generated_tokens = 0;
  int64_t context_tokens = 0;  // the session's length at the end
  absl::Status error;
};

// Runs user `user` of `workload` against `stub` to the end (or the first error).
UserTimings RunUser(v1::Sympow::Stub& stub, const Workload& workload, int64_t user);

}  // namespace sympow::loadgen
