// φ, the symmetric p-th tensor power: φ(q)·φ(k) = (q·k)^p with D = C(d+p−1, p) features.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace sympow {

// D = C(d+p−1, p), or an error when it (or D·d) is too large to hold a state.
absl::StatusOr<int64_t> ExpandedDim(int64_t head_dim, int64_t degree);

// Features are the monomials x_{i1}···x_{ip} over sorted multisets i1 ≤ … ≤ ip, in lexicographic
// order. The multinomial weight p!/∏(multiplicity!) sits on the key side (as Manifest's kernels
// do), so the query side is the plain monomial and the state holds weighted key features.
class SymmetricExpansion {
 public:
  // degree >= 2 (config validation guarantees an even degree).
  SymmetricExpansion(int head_dim, int degree);

  int head_dim() const { return head_dim_; }
  int degree() const { return degree_; }
  int64_t dim() const { return dim_; }
  // Floats of scratch that Expand needs (the intermediate degrees).
  int64_t scratch_size() const { return scratch_size_; }

  // out[0..D) = φ(x); `key_side` applies the multinomial weights.
  void Expand(const float* x, bool key_side, float* scratch, float* out) const;
  // Expands `rows` vectors of length head_dim (row stride `x_stride`) into out[rows × D].
  void ExpandRows(const float* x, int64_t rows, int64_t x_stride, bool key_side, float* out) const;

  // The sorted multiset of feature m, for tests and for other backends' layouts.
  std::vector<int> Monomial(int64_t m) const;
  float KeyWeight(int64_t m) const { return key_weight_[m]; }

 private:
  // Level k (degree k) entry m = level k−1 entry prefix[m] times x[last[m]].
  struct Level {
    std::vector<int32_t> prefix;
    std::vector<int32_t> last;
  };

  int head_dim_;
  int degree_;
  int64_t dim_;
  int64_t scratch_size_ = 0;
  std::vector<Level> levels_;  // levels_[k-2] builds degree k from degree k−1, k = 2..p
  std::vector<float> key_weight_;
};

}  // namespace sympow
