// Test support: the bundled model's held-out text and next-token loss after a prefix.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/engine.h"

namespace sympow::testing {

// tests/fixtures/heldout.txt encoded with the model's tokenizer.json (under `source_dir`).
std::vector<int32_t> HeldOutTokens(const std::string& source_dir, const Engine& engine);

// Prefills `prefix` into a new session, then scores `scored` token by token (teacher forcing):
// the mean negative log-likelihood in nats. Every logit must be finite.
double LossAfter(Engine& engine, std::span<const int32_t> prefix, std::span<const int32_t> scored);

// The loss on `scored` tokens of the held-out text (cycled to length) right after `prefix` tokens
// of it, and after only the last `short_prefix` of those: a long history should cost nothing.
struct LongContextLoss {
  double after_long = 0.0;
  double after_short = 0.0;
};
LongContextLoss LongContextLosses(const std::string& source_dir, Engine& engine, int64_t prefix,
                                  int64_t short_prefix, int64_t scored);

}  // namespace sympow::testing
