#include "model/sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

namespace sympow {
namespace {

using ::testing::HasSubstr;

// Logits for a vocabulary of 6 with probabilities falling by half per token: 1/2, 1/4, 1/8, ...
const std::vector<float> kLogits = {0.0f, -0.6931f, -1.3863f, -2.0794f, -2.7726f, -3.4657f};

std::map<int32_t, int> Histogram(const SamplingParams& params, int draws) {
  Sampler sampler(params);
  std::map<int32_t, int> counts;
  for (int i = 0; i < draws; ++i) ++counts[sampler.Sample(kLogits)];
  return counts;
}

TEST(Sampler, GreedyTakesTheArgmax) {
  SamplingParams params;
  params.temperature = 0;
  Sampler sampler(params);
  EXPECT_EQ(sampler.Sample(std::vector<float>{0.1f, 3.0f, -1.0f}), 1);
}

TEST(Sampler, SameSeedGivesSameTokens) {
  SamplingParams params;
  params.seed = 1234;
  Sampler a(params), b(params);
  std::vector<int32_t> first, second;
  for (int i = 0; i < 200; ++i) {
    first.push_back(a.Sample(kLogits));
    second.push_back(b.Sample(kLogits));
  }
  EXPECT_EQ(first, second);
  params.seed = 1235;
  Sampler c(params);
  std::vector<int32_t> third;
  for (int i = 0; i < 200; ++i) third.push_back(c.Sample(kLogits));
  EXPECT_NE(first, third);
}

TEST(Sampler, FollowsTheDistributionAtTemperatureOne) {
  std::map<int32_t, int> counts = Histogram(SamplingParams{}, 20000);
  EXPECT_NEAR(counts[0] / 20000.0, 0.5 / (1 - 1.0 / 64), 0.02);
  EXPECT_NEAR(counts[1] / 20000.0, 0.25 / (1 - 1.0 / 64), 0.02);
}

TEST(Sampler, LowTemperatureSharpens) {
  SamplingParams params;
  params.temperature = 0.25f;  // probabilities ∝ 2^(−4i)
  std::map<int32_t, int> counts = Histogram(params, 5000);
  EXPECT_GT(counts[0] / 5000.0, 0.9);
}

TEST(Sampler, TopKKeepsOnlyTheKMostLikely) {
  SamplingParams params;
  params.top_k = 2;
  std::map<int32_t, int> counts = Histogram(params, 3000);
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_NEAR(counts[0] / 3000.0, 2.0 / 3.0, 0.04);
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  SamplingParams params;
  params.top_p = 0.7f;  // 0.5 + 0.25 reaches 0.7: tokens 0 and 1
  std::map<int32_t, int> counts = Histogram(params, 3000);
  EXPECT_EQ(counts.size(), 2u);
  params.top_p = 0.01f;  // the most likely token always survives
  EXPECT_EQ(Histogram(params, 200).size(), 1u);
}

TEST(Sampler, MinPDropsTokensBelowAFractionOfTheBest) {
  SamplingParams params;
  params.min_p = 0.2f;  // keeps p >= 0.2·p_max: ratios 1, 1/2, 1/4 survive, 1/8 does not
  std::map<int32_t, int> counts = Histogram(params, 3000);
  EXPECT_EQ(counts.size(), 3u);
  EXPECT_EQ(counts.count(3), 0u);
}

TEST(Sampler, RepetitionPenaltyDiscouragesSeenTokens) {
  SamplingParams params;
  params.temperature = 0;
  params.repetition_penalty = 1.5f;
  Sampler sampler(params);
  const std::vector<float> logits = {2.0f, 1.5f, -1.0f};
  EXPECT_EQ(sampler.Sample(logits), 0);
  const int32_t seen[] = {0};
  sampler.Observe(seen);
  EXPECT_EQ(sampler.Sample(logits), 1);                            // 2.0/1.5 < 1.5
  EXPECT_EQ(sampler.Sample(std::vector<float>{-1.0f, -1.2f}), 1);  // −1.5 < −1.2
}

// Top-k and top-p cut in descending order with ties going to the lower id; the draw then
// inverts the distribution in id order.
TEST(SampleRow, CutsTiesByIdAndDrawsInIdOrder) {
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f, 3.0f};
  RowSampling row;
  row.top_k = 2;  // ids 1 and 2 of the three tied at 3.0
  row.uniform = 0.49;
  EXPECT_EQ(SampleRow(logits, row), 1);
  row.uniform = 0.51;
  EXPECT_EQ(SampleRow(logits, row), 2);
  row.top_k = 0;
  row.top_p = 0.5f;  // the three tied tokens hold ~0.86 of the mass: two of them reach 0.5
  row.uniform = 0.99;
  EXPECT_EQ(SampleRow(logits, row), 2);
  row.top_p = 1.0f;
  row.min_p = 0.5f;  // exp(−1) < 0.5 ≤ 1: ids 1, 2, 4 remain
  row.uniform = 0.99;
  EXPECT_EQ(SampleRow(logits, row), 4);
}

TEST(Sampler, RecognisesStopTokens) {
  SamplingParams params;
  params.stop_tokens = {3, 5};
  Sampler sampler(params);
  EXPECT_TRUE(sampler.IsStop(5));
  EXPECT_FALSE(sampler.IsStop(4));
}

TEST(Sampler, ValidationNamesTheField) {
  SamplingParams params;
  params.top_p = 0;
  EXPECT_THAT(std::string(ValidateSamplingParams(params, 10).message()), HasSubstr("top_p"));
  params = {};
  params.temperature = -1;
  EXPECT_THAT(std::string(ValidateSamplingParams(params, 10).message()), HasSubstr("temperature"));
  params = {};
  params.top_k = -2;
  EXPECT_THAT(std::string(ValidateSamplingParams(params, 10).message()), HasSubstr("top_k"));
  params = {};
  params.min_p = 1.5f;
  EXPECT_THAT(std::string(ValidateSamplingParams(params, 10).message()), HasSubstr("min_p"));
  params = {};
  params.repetition_penalty = 0;
  EXPECT_THAT(std::string(ValidateSamplingParams(params, 10).message()),
              HasSubstr("repetition_penalty"));
  params = {};
  params.stop_tokens = {1, 10};
  EXPECT_THAT(std::string(ValidateSamplingParams(params, 10).message()),
              HasSubstr("stop_tokens[1]"));
  EXPECT_TRUE(ValidateSamplingParams(SamplingParams{}, 10).ok());
}

}  // namespace
}  // namespace sympow
