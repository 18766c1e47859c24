// Picks the next token from logits: repetition penalty, temperature, top-k, top-p, min-p,
// and a seeded RNG so the same seed gives the same tokens.
//
// One rule, shared by every backend (SampleRow here, kernels/sampling.cu on the GPU): the scaled
// logits s = penalised logit / temperature; top-k keeps the k largest s (ties: lower token id
// first); top-p keeps, in that same order, the smallest prefix whose probability mass reaches
// top_p of what top-k kept (the most likely token always stays); min-p drops tokens whose
// probability is below min_p times the largest; the token is then drawn by inverting the
// cumulative distribution of what is left, in token-id order, at one uniform draw.
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

// One row's sampling for one step: the request's settings and this step's random draw.
struct RowSampling {
  float temperature = 1.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  double uniform = 0.0;                // in [0, 1)
  std::span<const int32_t> penalized;  // distinct token ids the repetition penalty applies to
};

struct SampledToken {
  int32_t token = 0;
  float logprob = 0.0f;  // log-softmax of the raw logits at `token`
};

// The rule above on the host, in double precision: the reference for every backend.
int32_t SampleRow(std::span<const float> logits, const RowSampling& row);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Tokens the repetition penalty applies to from now on (the prompt, then each output).
  void Observe(std::span<const int32_t> tokens);
  // This step's settings and random draw; valid until the next Observe.
  RowSampling Next();
  int32_t Sample(std::span<const float> logits) { return SampleRow(logits, Next()); }
  bool IsStop(int32_t token) const { return stop_tokens_.contains(token); }

 private:
  SamplingParams params_;
  absl::flat_hash_set<int32_t> stop_tokens_;
  std::mt19937_64 rng_;
  absl::flat_hash_set<int32_t> seen_;
  std::vector<int32_t> penalized_;
};

}  // namespace sympow
