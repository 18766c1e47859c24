#include "clients/loadgen/workload.h"

namespace sympow::loadgen {

Workload::Workload(WorkloadOptions options)
    : options_(options), system_prompt_(RandomTokens(1, options.system_prompt_tokens)) {}

std::vector<int32_t> Workload::RandomTokens(uint64_t seed, int64_t count) const {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(options_.vocab_size - 1));
  std::vector<int32_t> tokens(count);
  for (int32_t& t : tokens) t = token(rng);
  return tokens;
}

std::vector<int32_t> Workload::LongContext(int64_t user) const {
  return RandomTokens(1'000'003 + user, options_.long_context_tokens);
}

std::vector<int32_t> Workload::UserMessage(int64_t user, int64_t turn) const {
  std::mt19937_64 rng(user * 7919 + turn);
  std::uniform_int_distribution<int64_t> length(options_.user_tokens_min, options_.user_tokens_max);
  return RandomTokens(rng(), length(rng));
}

}  // namespace sympow::loadgen
