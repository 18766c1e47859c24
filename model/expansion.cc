#include "model/expansion.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sympow {

absl::StatusOr<int64_t> ExpandedDim(int64_t head_dim, int64_t degree) {
  // Bounds keep a single head's state (D × d floats) indexable with 32-bit offsets.
  constexpr int64_t kMaxStateElements = int64_t{1} << 31;
  if (head_dim <= 0 || degree <= 0)
    return absl::InvalidArgumentError("head_dim and degree must be positive");
  int64_t dim = 1;  // C(d+k−1, k) for k = 0..degree, each step exact.
  for (int64_t k = 1; k <= degree; ++k) {
    dim = dim * (head_dim + k - 1) / k;
    if (dim * head_dim >= kMaxStateElements) {
      return absl::InvalidArgumentError(absl::StrCat(
          "D·d exceeds 2^31 elements per head at degree ", k, " (head_dim ", head_dim, ")"));
    }
  }
  return dim;
}

SymmetricExpansion::SymmetricExpansion(int head_dim, int degree)
    : head_dim_(head_dim), degree_(degree) {
  // Degree-1 entries are x itself; run[] is the multiplicity of the last index.
  std::vector<int32_t> last_index(head_dim);
  std::vector<int32_t> run(head_dim, 1);
  std::vector<float> weight(head_dim, 1.0f);
  for (int i = 0; i < head_dim; ++i) last_index[i] = i;
  for (int k = 2; k <= degree; ++k) {
    Level level;
    std::vector<int32_t> next_run;
    std::vector<float> next_weight;
    for (int32_t m = 0; m < static_cast<int32_t>(last_index.size()); ++m) {
      for (int j = last_index[m]; j < head_dim; ++j) {
        level.prefix.push_back(m);
        level.last.push_back(j);
        const int32_t r = j == last_index[m] ? run[m] + 1 : 1;
        next_run.push_back(r);
        // k!/∏mult! grows by k/(new multiplicity of j) when j is appended.
        next_weight.push_back(weight[m] * static_cast<float>(k) / static_cast<float>(r));
      }
    }
    last_index = level.last;
    run = std::move(next_run);
    weight = std::move(next_weight);
    if (k < degree) scratch_size_ += static_cast<int64_t>(level.last.size());
    levels_.push_back(std::move(level));
  }
  dim_ = static_cast<int64_t>(last_index.size());
  key_weight_ = std::move(weight);
}

void SymmetricExpansion::Expand(const float* x, bool key_side, float* scratch, float* out) const {
  const float* previous = x;
  float* cursor = scratch;
  for (size_t level_index = 0; level_index < levels_.size(); ++level_index) {
    const Level& level = levels_[level_index];
    const bool final_level = level_index + 1 == levels_.size();
    float* values = final_level ? out : cursor;
    const int64_t n = static_cast<int64_t>(level.last.size());
    for (int64_t m = 0; m < n; ++m) values[m] = previous[level.prefix[m]] * x[level.last[m]];
    previous = values;
    cursor += final_level ? 0 : n;
  }
  if (key_side) {
    for (int64_t m = 0; m < dim_; ++m) out[m] *= key_weight_[m];
  }
}

void SymmetricExpansion::ExpandRows(const float* x, int64_t rows, int64_t x_stride, bool key_side,
                                    float* out) const {
#pragma omp parallel
  {
    std::vector<float> scratch(scratch_size_);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      Expand(x + r * x_stride, key_side, scratch.data(), out + r * dim_);
    }
  }
}

std::vector<int> SymmetricExpansion::Monomial(int64_t m) const {
  std::vector<int> indices(degree_);
  for (int k = degree_; k >= 2; --k) {
    const Level& level = levels_[k - 2];
    indices[k - 1] = level.last[m];
    m = level.prefix[m];
  }
  indices[0] = static_cast<int>(m);
  return indices;
}

}  // namespace sympow
