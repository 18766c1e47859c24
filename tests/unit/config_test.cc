#include "model/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/presets.h"
#include "model/state_layout.h"
#include "nlohmann/json.hpp"
#include "tests/unit/model_files.h"

namespace sympow {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

json ValidConfig() { return json::parse(ModelConfigToJson(testing::SmallConfig())); }

// Parses `config` and returns the error message ("" when it parses).
std::string ErrorOf(const json& config) {
  absl::StatusOr<ModelConfig> parsed = ParseModelConfig(config.dump(), "config.json");
  return parsed.ok() ? "" : std::string(parsed.status().message());
}

TEST(ModelConfig, RoundTripsEveryField) {
  ModelConfig original = testing::SmallConfig();
  original.attention_scale = 0.25;
  original.norm = NormKind::kLayer;
  original.mlp = MlpKind::kGeluTanh;
  original.bias = true;
  original.state_dtype = StateDType::kBFloat16;
  original.rope_theta = 0;
  absl::StatusOr<ModelConfig> parsed = ParseModelConfig(ModelConfigToJson(original), "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(ModelConfigToJson(*parsed), ModelConfigToJson(original));
  EXPECT_DOUBLE_EQ(parsed->AttentionScale(), 0.25);
}

TEST(ModelConfig, DefaultsFollowHuggingFaceConventions) {
  json config = ValidConfig();
  for (const char* optional : {"num_kv_heads", "head_dim", "chunk_size", "gating", "qk_norm",
                               "attention_scale", "norm", "mlp", "bias", "state_dtype"}) {
    config.erase(optional);
  }
  config["hidden_size"] = 64;
  absl::StatusOr<ModelConfig> parsed = ParseModelConfig(config.dump(), "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->num_kv_heads, parsed->num_heads);
  EXPECT_EQ(parsed->head_dim, 32);  // hidden_size / num_heads
  EXPECT_DOUBLE_EQ(parsed->AttentionScale(), 1.0 / std::sqrt(32.0));
  EXPECT_EQ(parsed->state_dtype, StateDType::kFloat32);
}

TEST(ModelConfig, RejectsBadJson) {
  EXPECT_THAT(std::string(ParseModelConfig("{", "dir/config.json").status().message()),
              HasSubstr("dir/config.json: not valid JSON"));
  EXPECT_THAT(std::string(ParseModelConfig("[1]", "c").status().message()),
              HasSubstr("JSON object"));
}

TEST(ModelConfig, RejectsUnknownArchitecture) {
  json config = ValidConfig();
  config["architecture"] = "llama";
  EXPECT_THAT(ErrorOf(config), HasSubstr("field 'architecture' must be \"sympow\", got \"llama\""));
}

TEST(ModelConfig, RejectsOddOrSmallDegree) {
  json config = ValidConfig();
  config["degree"] = 3;
  EXPECT_THAT(ErrorOf(config), HasSubstr("field 'degree' must be an even integer >= 2, got 3"));
  config["degree"] = 0;
  EXPECT_THAT(ErrorOf(config), HasSubstr("field 'degree'"));
}

TEST(ModelConfig, RejectsHeadDimThatDoesNotDivideHidden) {
  json config = ValidConfig();
  config.erase("head_dim");
  config["hidden_size"] = 33;
  EXPECT_THAT(ErrorOf(config),
              HasSubstr("field 'head_dim' is missing and hidden_size (33) is not a "
                        "multiple of num_heads (2)"));
}

TEST(ModelConfig, RejectsKvHeadsThatDoNotDivideHeads) {
  json config = ValidConfig();
  config["num_heads"] = 3;
  EXPECT_THAT(ErrorOf(config), HasSubstr("field 'num_kv_heads' (2) must divide num_heads (3)"));
}

TEST(ModelConfig, RejectsOddHeadDimWithRope) {
  json config = ValidConfig();
  config["head_dim"] = 15;
  EXPECT_THAT(ErrorOf(config), HasSubstr("field 'head_dim' must be even when RoPE is on"));
}

TEST(ModelConfig, RejectsWrongTypesAndMissingFields) {
  json config = ValidConfig();
  config["vocab_size"] = "50";
  EXPECT_THAT(ErrorOf(config), HasSubstr("field 'vocab_size' must be an integer, got \"50\""));
  config = ValidConfig();
  config.erase("num_layers");
  EXPECT_THAT(ErrorOf(config), HasSubstr("field 'num_layers' is required but missing"));
  config = ValidConfig();
  config["gating"] = 1;
  EXPECT_THAT(ErrorOf(config), HasSubstr("field 'gating' must be true or false"));
}

TEST(ModelConfig, RejectsOutOfRangeValues) {
  const std::vector<std::pair<std::string, json>> cases = {
      {"hidden_size", 0},   {"intermediate_size", -4}, {"chunk_size", 0},
      {"norm_eps", 0.0},    {"rope_theta", -1.0},      {"attention_scale", -0.5},
      {"bos_token_id", 50}, {"eos_token_id", -1},      {"norm", "batch"},
      {"mlp", "relu"},      {"state_dtype", "float16"}};
  for (const auto& [field, value] : cases) {
    json config = ValidConfig();
    config[field] = value;
    EXPECT_THAT(ErrorOf(config), HasSubstr("field '" + field + "'")) << field << "=" << value;
  }
}

TEST(ModelConfig, RejectsStatesTooLargeToHold) {
  json config = ValidConfig();
  config["head_dim"] = 128;
  config["degree"] = 6;
  EXPECT_THAT(ErrorOf(config), HasSubstr("state too large"));
}

TEST(ModelConfig, LoadReportsMissingFile) {
  absl::StatusOr<ModelConfig> missing = LoadModelConfig("/nonexistent/config.json");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("/nonexistent/config.json"));
}

}  // namespace
}  // namespace sympow

namespace sympow {
namespace {

TEST(ModelPresets, EveryPresetIsAValidConfigWithMODELmdStateSize) {
  for (const std::string& name : PresetNames()) {
    absl::StatusOr<ModelConfig> preset = PresetConfig(name);
    ASSERT_TRUE(preset.ok()) << preset.status();
    EXPECT_TRUE(ParseModelConfig(ModelConfigToJson(*preset), name).ok()) << name;
  }
  // MODEL.md: the 124M-class state is 78 MB in fp32, the 14B-class 1.36 GB; then the decode
  // buffers of 64 tokens (a count padded to 4 floats, then log gates, keys and values in fp32).
  EXPECT_EQ(StateLayout::ForConfig(PresetConfig("124m").value()).Bytes(),
            12 * 12 * (2080 * 64 + 2080) * 4 + 12 * 12 * (4 + 64 * (1 + 2 * 64)) * 4);
  EXPECT_EQ(StateLayout::ForConfig(PresetConfig("14b").value()).Bytes(),
            int64_t{40} * 8 * (8256 * 128 + 8256) * 4 + 40 * 8 * (4 + 64 * (1 + 2 * 128)) * 4);
  EXPECT_EQ(PresetConfig("7b").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sympow
