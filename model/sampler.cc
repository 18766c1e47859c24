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

int32_t SampleRow(std::span<const float> logits, const RowSampling& row) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  std::vector<float> scaled(logits.begin(), logits.end());
  for (int32_t token : row.penalized) {
    float& value = scaled[token];
    value = value > 0 ? value / row.repetition_penalty : value * row.repetition_penalty;
  }
  if (row.temperature == 0.0f) {
    return static_cast<int32_t>(std::max_element(scaled.begin(), scaled.end()) - scaled.begin());
  }
  for (float& value : scaled) value /= row.temperature;
  const double max_scaled = *std::max_element(scaled.begin(), scaled.end());
  std::vector<double> weight(vocab);
  for (int32_t i = 0; i < vocab; ++i) weight[i] = std::exp(scaled[i] - max_scaled);

  // Candidates in descending order (ties: lower id first), as far as a cut needs them.
  std::vector<int32_t> order(vocab);
  for (int32_t i = 0; i < vocab; ++i) order[i] = i;
  auto before = [&](int32_t a, int32_t b) {
    return scaled[a] > scaled[b] || (scaled[a] == scaled[b] && a < b);
  };
  size_t candidates = order.size();
  if (row.top_k > 0 && row.top_k < vocab) {
    std::partial_sort(order.begin(), order.begin() + row.top_k, order.end(), before);
    candidates = row.top_k;
  } else if (row.top_p < 1.0f) {
    std::sort(order.begin(), order.end(), before);
  }
  if (row.top_p < 1.0f) {
    double total = 0.0;
    for (size_t i = 0; i < candidates; ++i) total += weight[order[i]];
    double mass = 0.0;
    size_t cut = 0;
    while (cut < candidates && mass < row.top_p * total) mass += weight[order[cut++]];
    candidates = std::max<size_t>(cut, 1);
  }
  std::vector<bool> kept(vocab, candidates == order.size());
  for (size_t i = 0; i < candidates; ++i) kept[order[i]] = true;
  double kept_mass = 0.0;
  for (int32_t i = 0; i < vocab; ++i) {
    // The largest weight is exp(0) = 1, so min-p compares weights directly.
    if (kept[i] && weight[i] < row.min_p) kept[i] = false;
    if (kept[i]) kept_mass += weight[i];
  }
  double target = row.uniform * kept_mass;
  int32_t last_kept = 0;
  for (int32_t i = 0; i < vocab; ++i) {
    if (!kept[i]) continue;
    target -= weight[i];
    if (target < 0) return i;
    if (weight[i] > 0) last_kept = i;
  }
  return last_kept;  // rounding left a sliver of mass: the last token with any takes it
}

Sampler::Sampler(const SamplingParams& params)
    : params_(params),
      stop_tokens_(params.stop_tokens.begin(), params.stop_tokens.end()),
      rng_(params.seed) {}

void Sampler::Observe(std::span<const int32_t> tokens) {
  if (params_.repetition_penalty == 1.0f) return;
  for (int32_t token : tokens) {
    if (seen_.insert(token).second) penalized_.push_back(token);
  }
}

RowSampling Sampler::Next() {
  RowSampling row;
  row.temperature = params_.temperature;
  row.top_k = params_.top_k;
  row.top_p = params_.top_p;
  row.min_p = params_.min_p;
  row.repetition_penalty = params_.repetition_penalty;
  // 53 random bits: the same [0, 1) sequence on every platform for one seed.
  row.uniform = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  row.penalized = penalized_;
  return row;
}

}  // namespace sympow
