// The bundled model after a 100k-token prefix: everything stays finite and its loss on the next
// held-out text is no worse than after a short prefix (a state that forgets gracefully).
#include <gtest/gtest.h>

#include <iostream>

#include "tests/unit/held_out_loss.h"
#include "tests/unit/oracle_cases.h"

namespace sympow {
namespace {

const std::string kModelDir = std::string(SYMPOW_SOURCE_DIR) + "/models/sympow-tiny";

constexpr int64_t kLongPrefix = 100'000;
constexpr int64_t kShortPrefix = 1'024;
constexpr int64_t kScored = 1'024;
// How much worse (nats per token) the long-prefix loss may be than the short-prefix one.
// Measured with the bundled model: 3.65723 after 100k tokens and 3.65728 after 1k.
constexpr double kMarginNats = 0.05;

TEST(LongContext, HeldOutLossAfter100kTokensIsNoWorseThanAfterAShortPrefix) {
  auto engine = testing::MakeCpuEngine(kModelDir, {.max_batch_tokens = 4096});
  ASSERT_NE(engine, nullptr);
  const std::vector<int32_t> ids = testing::HeldOutTokens(SYMPOW_SOURCE_DIR, *engine);
  ASSERT_GE(static_cast<int64_t>(ids.size()), kLongPrefix + kScored);
  const std::span<const int32_t> all(ids);
  const std::span<const int32_t> scored = all.subspan(kLongPrefix, kScored);
  const double long_loss = testing::LossAfter(*engine, all.first(kLongPrefix), scored);
  const double short_loss =
      testing::LossAfter(*engine, all.subspan(kLongPrefix - kShortPrefix, kShortPrefix), scored);
  std::cout << "held-out loss on " << kScored << " tokens: " << long_loss << " after "
            << kLongPrefix << " tokens, " << short_loss << " after " << kShortPrefix << "\n";
  EXPECT_LE(long_loss, short_loss + kMarginNats);
}

}  // namespace
}  // namespace sympow
