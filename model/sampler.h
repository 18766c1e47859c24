// Picks the next token from logits: repetition penalty, temperature, top-k, top-p, min-p,
// and a seeded RNG so the same seed gives the same tokens.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"

namespace sympow {

struct SamplingParams {
  float temperature = 1.0f;         // 0: greedy (argmax)
  int32_t top_k = 0;                // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off; keep tokens with p >= min_p · p_max
  float repetition_penalty = 1.0f;  // 1: off; >1 discourages tokens already seen (CTRL rule)
  uint64_t seed = 0;
  std::vector<int32_t> stop_tokens;
};

// INVALID_ARGUMENT naming the first field out of range.
absl::Status ValidateSamplingParams(const SamplingParams& params, int64_t vocab_size);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // `history`: the tokens the repetition penalty applies to (prompt and generated so far).
  int32_t Sample(std::span<const float> logits, std::span<const int32_t> history);
  bool IsStop(int32_t token) const { return stop_tokens_.contains(token); }

 private:
  double NextUniform();  // [0, 1), the same sequence on every platform for one seed

  SamplingParams params_;
  absl::flat_hash_set<int32_t> stop_tokens_;
  std::mt19937_64 rng_;
  std::vector<float> adjusted_;
  std::vector<int32_t> candidates_;
  std::vector<double> probabilities_;
};

}  // namespace sympow
