#include "tests/unit/held_out_loss.h"

#include <gtest/gtest.h>

#include <cmath>

#include "model/loss.h"
#include "model/tokenizer/tokenizer.h"
#include "tests/unit/model_files.h"

namespace sympow::testing {

std::vector<int32_t> HeldOutTokens(const std::string& source_dir, const Engine& engine) {
  const std::string model_dir = source_dir + "/models/sympow-tiny";
  return LoadTokenizerForModel(model_dir, engine.config().vocab_size)
      .value()
      ->Encode(ReadFile(source_dir + "/tests/fixtures/heldout.txt"));
}

double LossAfter(Engine& engine, std::span<const int32_t> prefix, std::span<const int32_t> scored) {
  SessionId session = engine.CreateSession().value();
  std::vector<float> logits = engine.Prefill(session, prefix).value();  // predicts scored[0]
  std::vector<float> rest =
      engine.Prefill(session, scored.first(scored.size() - 1), LogitsFor::kEveryToken).value();
  logits.insert(logits.end(), rest.begin(), rest.end());
  for (float value : logits) EXPECT_TRUE(std::isfinite(value));
  EXPECT_TRUE(engine.DeleteSession(session).ok());
  const int64_t vocab = engine.config().vocab_size;
  double total = 0.0;
  for (size_t i = 0; i < scored.size(); ++i) {
    total += NegativeLogLikelihood(std::span(logits).subspan(i * vocab, vocab), scored[i]);
  }
  return total / static_cast<double>(scored.size());
}

LongContextLoss LongContextLosses(const std::string& source_dir, Engine& engine, int64_t prefix,
                                  int64_t short_prefix, int64_t scored) {
  const std::vector<int32_t> text = HeldOutTokens(source_dir, engine);
  std::vector<int32_t> stream(prefix + scored);
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = text[i % text.size()];
  const std::span<const int32_t> all(stream);
  const std::span<const int32_t> next = all.subspan(prefix, scored);
  return {LossAfter(engine, all.first(prefix), next),
          LossAfter(engine, all.subspan(prefix - short_prefix, short_prefix), next)};
}

}  // namespace sympow::testing
