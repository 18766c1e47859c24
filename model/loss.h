// Next-token loss from logits, for scoring text (perplexity tools, long-context checks).
#pragma once

#include <cstdint>
#include <span>

namespace sympow {

// −log softmax(logits)[target], computed stably in double.
double NegativeLogLikelihood(std::span<const float> logits, int32_t target);

}  // namespace sympow
