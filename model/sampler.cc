#include "model/sampler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace sympow {

absl::Status ValidateSamplingParams(const SamplingParams& p, int64_t vocab_size) {
  auto bad = [](absl::string_view field, auto value, absl::string_view rule) {
    return absl::InvalidArgumentError(absl::StrCat(field, " = ", value, ": ", rule));
  };
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature)) {
    return bad("temperature", p.temperature, "must be >= 0 (0 is greedy)");
  }
  if (p.top_k < 0) return bad("top_k", p.top_k, "must be >= 0 (0 is off)");
  if (!(p.top_p > 0 && p.top_p <= 1)) return bad("top_p", p.top_p, "must be in (0, 1]");
  if (!(p.min_p >= 0 && p.min_p <= 1)) return bad("min_p", p.min_p, "must be in [0, 1]");
  if (!(p.repetition_penalty > 0) || !std::isfinite(p.repetition_penalty)) {
    return bad("repetition_penalty", p.repetition_penalty, "must be > 0 (1 is off)");
  }
  for (size_t i = 0; i < p.stop_tokens.size(); ++i) {
    if (p.stop_tokens[i] < 0 || p.stop_tokens[i] >= vocab_size) {
      return bad(absl::StrCat("stop_tokens[", i, "]"), p.stop_tokens[i],
                 absl::StrCat("must be a token id in [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params)
    : params_(params),
      stop_tokens_(params.stop_tokens.begin(), params.stop_tokens.end()),
      rng_(params.seed) {}

double Sampler::NextUniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::Sample(std::span<const float> logits, std::span<const int32_t> history) {
  adjusted_.assign(logits.begin(), logits.end());
  if (params_.repetition_penalty != 1.0f) {
    for (int32_t token : absl::flat_hash_set<int32_t>(history.begin(), history.end())) {
      float& value = adjusted_[token];
      value = value > 0 ? value / params_.repetition_penalty : value * params_.repetition_penalty;
    }
  }
  const int32_t vocab = static_cast<int32_t>(adjusted_.size());
  if (params_.temperature == 0.0f) {
    return static_cast<int32_t>(std::max_element(adjusted_.begin(), adjusted_.end()) -
                                adjusted_.begin());
  }
  // Candidates in descending logit order where a cut needs the order (top-k, top-p).
  candidates_.resize(vocab);
  for (int32_t i = 0; i < vocab; ++i) candidates_[i] = i;
  auto by_logit = [&](int32_t a, int32_t b) {
    return adjusted_[a] > adjusted_[b] || (adjusted_[a] == adjusted_[b] && a < b);
  };
  size_t kept = candidates_.size();
  if (params_.top_k > 0 && params_.top_k < vocab) {
    std::partial_sort(candidates_.begin(), candidates_.begin() + params_.top_k, candidates_.end(),
                      by_logit);
    kept = params_.top_k;
  } else if (params_.top_p < 1.0f) {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  candidates_.resize(kept);
  float max_logit = -INFINITY;
  for (int32_t token : candidates_) max_logit = std::max(max_logit, adjusted_[token]);
  probabilities_.resize(kept);
  double total = 0.0;
  for (size_t i = 0; i < kept; ++i) {
    probabilities_[i] = std::exp((adjusted_[candidates_[i]] - max_logit) / params_.temperature);
    total += probabilities_[i];
  }
  if (params_.top_p < 1.0f) {
    // Smallest prefix whose mass reaches top_p; the most likely token always stays.
    double mass = 0.0;
    size_t cut = 0;
    while (cut < kept && mass < params_.top_p * total) mass += probabilities_[cut++];
    kept = std::max<size_t>(cut, 1);
  }
  if (params_.min_p > 0.0f) {
    // The largest probability is exp(0) = 1 before normalisation.
    for (size_t i = 0; i < kept; ++i) {
      if (probabilities_[i] < params_.min_p) probabilities_[i] = 0.0;
    }
  }
  double kept_mass = 0.0;
  for (size_t i = 0; i < kept; ++i) kept_mass += probabilities_[i];
  double target = NextUniform() * kept_mass;
  for (size_t i = 0; i < kept; ++i) {
    target -= probabilities_[i];
    if (target < 0) return candidates_[i];
  }
  // Rounding left a sliver of mass: the last token with any probability takes it.
  for (size_t i = kept; i-- > 0;) {
    if (probabilities_[i] > 0) return candidates_[i];
  }
  return candidates_[0];
}

}  // namespace sympow
