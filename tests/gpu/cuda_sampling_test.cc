// Sampling on the GPU (kernels/sampling.cu) against the host rule (SampleRow): the same token
// for the same logits, settings and uniform draw, and the right distribution over many draws.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "model/backend_factory.h"
#include "model/loss.h"
#include "model/presets.h"
#include "model/sampler.h"

namespace sympow {
namespace {

// Logits uploaded to a fresh CUDA backend, sampled there in one call.
std::vector<SampledToken> SampleOnGpu(const std::vector<float>& logits, int64_t vocab,
                                      const std::vector<RowSampling>& rows) {
  // Any model the kernels cover: sampling does not depend on it.
  std::unique_ptr<Backend> gpu = CreateBackend("cuda", PresetConfig("tiny").value(), 1).value();
  Matrix device = gpu->Allocate(static_cast<int64_t>(rows.size()), vocab);
  gpu->CopyFromHost(logits.data(), device.view);
  std::vector<SampledToken> out(rows.size());
  gpu->Sample(device.view, rows, out);
  return out;
}

// Rows of random normal logits (rounded to integers when `ties`, so that many tokens tie) under
// each of `settings`, sampled on the GPU and by the host rule: the tokens that differ, printed,
// and the largest log-prob error in the figures.
int CompareWithTheHostRule(int64_t vocab, const std::vector<RowSampling>& settings, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<RowSampling> rows;
  std::vector<float> logits;
  for (const RowSampling& setting : settings) {
    for (bool ties : {false, true}) {
      RowSampling row = setting;
      row.uniform = uniform(rng);
      for (int64_t i = 0; i < vocab; ++i) {
        const float x = normal(rng);
        logits.push_back(ties ? std::round(x) : x);
      }
      rows.push_back(row);
    }
  }
  const std::vector<SampledToken> gpu = SampleOnGpu(logits, vocab, rows);
  int mismatches = 0;
  double worst_logprob = 0.0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const std::span<const float> row(logits.data() + r * vocab, vocab);
    const int32_t expected = SampleRow(row, rows[r]);
    if (gpu[r].token != expected) {
      ++mismatches;
      std::printf("vocab %lld row %zu: GPU %d, host %d (T %.2f, k %d, p %.2f, min_p %.2f)\n",
                  static_cast<long long>(vocab), r, gpu[r].token, expected, rows[r].temperature,
                  rows[r].top_k, rows[r].top_p, rows[r].min_p);
    }
    worst_logprob = std::max(worst_logprob,
                             std::abs(gpu[r].logprob + NegativeLogLikelihood(row, gpu[r].token)));
  }
  std::printf(
      "[figure] GPU sampling, vocab %lld: tokens differing from the host rule: %d of %zu, "
      "log-prob error %.3g nats\n",
      static_cast<long long>(vocab), mismatches, rows.size(), worst_logprob);
  EXPECT_LT(worst_logprob, 1e-4) << "vocab " << vocab;
  return mismatches;
}

// Every combination of temperature, top-k, top-p, min-p and repetition penalty.
TEST(GpuSampling, MatchesTheHostRuleRowByRow) {
  constexpr int64_t kVocab = 5003;
  std::vector<int32_t> penalized;
  for (int32_t t = 0; t < kVocab; t += 7) penalized.push_back(t);
  std::vector<RowSampling> settings;
  for (float temperature : {0.0f, 0.7f, 1.0f, 1.6f}) {
    for (int32_t top_k : {0, 1, 3, 40, static_cast<int>(kVocab) - 1}) {
      for (float top_p : {1.0f, 0.9f, 0.3f}) {
        for (float min_p : {0.0f, 0.05f}) {
          for (bool penalty : {false, true}) {
            RowSampling row;
            row.temperature = temperature;
            row.top_k = top_k;
            row.top_p = top_p;
            row.min_p = min_p;
            if (penalty) {
              row.repetition_penalty = 1.4f;
              row.penalized = penalized;
            }
            settings.push_back(row);
          }
        }
      }
    }
  }
  // Float against double sums may tip a draw that lands within rounding of a boundary.
  EXPECT_LE(CompareWithTheHostRule(kVocab, settings, 11), 2);
}

// A row is split over a cluster of blocks: vocabularies smaller than the cluster (blocks with no
// ids), odd sizes, GPT-2's and Qwen's.
TEST(GpuSampling, MatchesTheHostRuleAtEveryVocabularySize) {
  std::vector<RowSampling> settings;
  for (float temperature : {0.0f, 0.8f}) {
    for (int32_t top_k : {0, 2, 50}) {
      for (float top_p : {1.0f, 0.95f}) {
        RowSampling row;
        row.temperature = temperature;
        row.top_k = top_k;
        row.top_p = top_p;
        settings.push_back(row);
      }
    }
  }
  int mismatches = 0;
  for (int64_t vocab : {1, 3, 7, 9, 1001, 50257, 152064}) {
    mismatches += CompareWithTheHostRule(vocab, settings, static_cast<uint64_t>(vocab));
  }
  EXPECT_LE(mismatches, 2);
}

// 40,000 draws from one distribution over 100 tokens (of an 8,192-token vocabulary whose rest
// are far below): each token's frequency within 4.5 standard errors of its probability.
TEST(GpuSampling, FollowsTheDistribution) {
  constexpr int64_t kVocab = 8192, kDraws = 40000, kLive = 100;
  std::vector<float> one_row(kVocab, -60.0f);
  for (int64_t i = 0; i < kLive; ++i) one_row[i * 81] = -0.05f * static_cast<float>(i);
  std::vector<double> probability(kVocab);
  double total = 0.0;
  for (int64_t i = 0; i < kVocab; ++i) total += std::exp(static_cast<double>(one_row[i]));
  for (int64_t i = 0; i < kVocab; ++i) probability[i] = std::exp(one_row[i]) / total;
  std::vector<float> logits;
  std::vector<RowSampling> rows(kDraws);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (RowSampling& row : rows) {
    row.uniform = uniform(rng);
    logits.insert(logits.end(), one_row.begin(), one_row.end());
  }
  std::vector<int64_t> counts(kVocab);
  for (const SampledToken& sampled : SampleOnGpu(logits, kVocab, rows)) ++counts[sampled.token];
  double worst_z = 0.0;
  for (int64_t i = 0; i < kVocab; ++i) {
    const double p = probability[i];
    const double expected = p * kDraws, spread = std::sqrt(kDraws * p * (1 - p)) + 1e-9;
    worst_z = std::max(worst_z, std::abs(static_cast<double>(counts[i]) - expected) / spread);
  }
  std::printf("[figure] GPU sampling, largest z-score over %lld draws: %.2f\n",
              static_cast<long long>(kDraws), worst_z);
  EXPECT_LT(worst_z, 4.5);
}

}  // namespace
}  // namespace sympow
