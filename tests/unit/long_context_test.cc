// The bundled model after a 100k-token prefix: everything stays finite and its loss on the next
// held-out text is no worse than after a short prefix (a state that forgets gracefully).
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

#include "tests/unit/held_out_loss.h"
#include "tests/unit/oracle_cases.h"

namespace sympow {
namespace {

const std::string kModelDir = std::string(SYMPOW_SOURCE_DIR) + "/models/sympow-tiny";

// $SYMPOW_LONG_CONTEXT_TOKENS lengthens the prefix for a one-off measurement (CI runs 100k).
int64_t LongPrefix() {
  const char* tokens = std::getenv("SYMPOW_LONG_CONTEXT_TOKENS");
  return tokens != nullptr ? std::atoll(tokens) : 100'000;
}
constexpr int64_t kShortPrefix = 1'024;
constexpr int64_t kScored = 1'024;
// How much worse (nats per token) the long-prefix loss may be than the short-prefix one.
// Measured with the bundled model: 3.65723 after 100k tokens and 3.65728 after 1k.
constexpr double kMarginNats = 0.05;

TEST(LongContext, HeldOutLossAfter100kTokensIsNoWorseThanAfterAShortPrefix) {
  const int64_t long_prefix = LongPrefix();
  auto engine = testing::MakeCpuEngine(kModelDir, {.max_batch_tokens = 4096});
  ASSERT_NE(engine, nullptr);
  const testing::LongContextLoss loss =
      testing::LongContextLosses(SYMPOW_SOURCE_DIR, *engine, long_prefix, kShortPrefix, kScored);
  std::cout << "held-out loss on " << kScored << " tokens: " << loss.after_long << " after "
            << long_prefix << " tokens, " << loss.after_short << " after " << kShortPrefix << "\n";
  EXPECT_LE(loss.after_long, loss.after_short + kMarginNats);
}

}  // namespace
}  // namespace sympow
