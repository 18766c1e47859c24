#include "model/loss.h"

#include <algorithm>
#include <cmath>

namespace sympow {

double NegativeLogLikelihood(std::span<const float> logits, int32_t target) {
  double max_logit = -INFINITY;
  for (float value : logits) max_logit = std::max<double>(max_logit, value);
  double sum = 0.0;
  for (float value : logits) sum += std::exp(value - max_logit);
  return max_logit + std::log(sum) - logits[target];
}

}  // namespace sympow
