#include "model/expansion.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

namespace sympow {
namespace {

TEST(Expansion, DimensionIsTheNumberOfMultisets) {
  EXPECT_EQ(ExpandedDim(64, 2).value(), 2080);
  EXPECT_EQ(ExpandedDim(128, 2).value(), 8256);
  EXPECT_EQ(ExpandedDim(32, 4).value(), 52360);
  EXPECT_EQ(ExpandedDim(16, 4).value(), 3876);
  EXPECT_FALSE(ExpandedDim(128, 8).ok());
}

TEST(Expansion, MonomialsAreSortedDistinctMultisets) {
  SymmetricExpansion phi(5, 4);
  std::set<std::vector<int>> seen;
  for (int64_t m = 0; m < phi.dim(); ++m) {
    std::vector<int> monomial = phi.Monomial(m);
    EXPECT_TRUE(std::is_sorted(monomial.begin(), monomial.end()));
    EXPECT_TRUE(seen.insert(monomial).second);
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), phi.dim());
  EXPECT_FLOAT_EQ(phi.KeyWeight(0), 1.0f);  // x0^4
  EXPECT_FLOAT_EQ(phi.KeyWeight(1), 4.0f);  // x0^3 x1
}

class ExpansionInnerProduct : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(ExpansionInnerProduct, EqualsPowerOfDotProduct) {
  const auto [d, p] = GetParam();
  SymmetricExpansion phi(d, p);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f / std::sqrt(static_cast<float>(d)));
  std::vector<float> q(d), k(d), scratch(phi.scratch_size()), phi_q(phi.dim()), phi_k(phi.dim());
  for (int trial = 0; trial < 5; ++trial) {
    for (int i = 0; i < d; ++i) q[i] = normal(rng), k[i] = normal(rng);
    phi.Expand(q.data(), false, scratch.data(), phi_q.data());
    phi.Expand(k.data(), true, scratch.data(), phi_k.data());
    double expanded = 0.0, dot = 0.0;
    for (int64_t m = 0; m < phi.dim(); ++m) expanded += static_cast<double>(phi_q[m]) * phi_k[m];
    for (int i = 0; i < d; ++i) dot += static_cast<double>(q[i]) * k[i];
    EXPECT_NEAR(expanded, std::pow(dot, p), 1e-5 * std::max(1.0, std::pow(std::abs(dot), p)));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ExpansionInnerProduct,
                         ::testing::Values(std::pair{16, 2}, std::pair{64, 2}, std::pair{128, 2},
                                           std::pair{8, 4}, std::pair{32, 4}, std::pair{6, 6}));

}  // namespace
}  // namespace sympow
