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

}  // namespace sympow::testing
