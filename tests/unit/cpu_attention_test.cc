// The CPU backend's chunked prefill against its own decode over a buffer that holds every token
// (exact quadratic attention, no state), across query and kv head layouts.
#include <gtest/gtest.h>

#include <cstdio>

#include "tests/unit/attention_run.h"
#include "tests/unit/oracle_cases.h"

namespace sympow {
namespace {

// Two fp32 summation orders of the same attention.
constexpr double kTolerance = 1e-4;

struct HeadLayout {
  int64_t heads, kv_heads;
};

class CpuAttentionLayouts : public ::testing::TestWithParam<HeadLayout> {};

TEST_P(CpuAttentionLayouts, ChunkedPrefillMatchesDecodingEveryTokenFromTheBuffer) {
  const HeadLayout layout = GetParam();
  constexpr int64_t kTokens = 200;
  ModelConfig c =
      testing::AttentionConfig(64, 2, layout.heads, layout.kv_heads, true, StateDType::kFloat32);
  c.chunk_size = 64;  // four chunks, the last one short
  c.decode_buffer_tokens = 256;
  const testing::AttentionInputs inputs(c, kTokens, 5);
  testing::AttentionRun prefilled("cpu", c, inputs, 1), decoded("cpu", c, inputs, 1);
  prefilled.Run(0, kTokens, {{0, kTokens, 0}});
  for (int64_t t = 0; t < kTokens; ++t) decoded.Run(t, 1, {{0, 1, 0}});
  const double error = testing::MaxRelativeError(prefilled.Output(), decoded.Output());
  std::printf("[figure] heads %lld/%lld: prefill vs buffered decode %.3g\n",
              static_cast<long long>(layout.heads), static_cast<long long>(layout.kv_heads), error);
  EXPECT_LT(error, kTolerance);
}

INSTANTIATE_TEST_SUITE_P(Layouts, CpuAttentionLayouts,
                         ::testing::Values(HeadLayout{1, 1}, HeadLayout{2, 2}, HeadLayout{4, 4},
                                           HeadLayout{8, 4}, HeadLayout{8, 2}, HeadLayout{6, 3}));

}  // namespace
}  // namespace sympow
