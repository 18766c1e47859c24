// The serving benchmark's workload: virtual users chatting with sympow-server, each in its own
// session, with a realistic mix: every session starts from one shared system prompt, some carry
// a long document first (a 100k-token history), and turns alternate a user message with a
// generated reply. Token ids are drawn at random from the model's vocabulary (the server's speed
// does not depend on which tokens they are).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace sympow::loadgen {

struct WorkloadOptions {
  int64_t vocab_size = 0;
  int64_t system_prompt_tokens = 512;
  int64_t long_context_tokens = 100'000;
  int64_t long_context_every = 64;  // one user in this many carries the long context
  int64_t user_tokens_min = 16, user_tokens_max = 256;
  int64_t reply_tokens = 128;
  int64_t turns = 4;
};

class Workload {
 public:
  explicit Workload(WorkloadOptions options);

  const WorkloadOptions& options() const { return options_; }
  const std::vector<int32_t>& system_prompt() const { return system_prompt_; }
  bool HasLongContext(int64_t user) const {
    return options_.long_context_every > 0 && user % options_.long_context_every == 0;
  }
  std::vector<int32_t> LongContext(int64_t user) const;
  std::vector<int32_t> UserMessage(int64_t user, int64_t turn) const;

 private:
  std::vector<int32_t> RandomTokens(uint64_t seed, int64_t count) const;

  WorkloadOptions options_;
  std::vector<int32_t> system_prompt_;
};

}  // namespace sympow::loadgen
