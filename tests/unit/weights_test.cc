#include "model/weights.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/engine.h"
#include "model/random_model.h"
#include "model/safetensors_writer.h"
#include "tests/unit/model_files.h"

namespace sympow {
namespace {

using ::testing::HasSubstr;

// Writes SmallConfig's tensors except `drop`, with `reshape` given a wrong shape and `extra` added.
std::string BindError(const std::string& drop, const std::string& reshape,
                      const std::string& extra) {
  testing::TempDir dir;
  const ModelConfig config = testing::SmallConfig();
  std::vector<TensorToWrite> tensors;
  for (const TensorSpec& spec : ModelTensorSpecs(config)) {
    if (spec.name == drop) continue;
    std::vector<int64_t> shape = spec.name == reshape ? std::vector<int64_t>{3, 3} : spec.shape;
    int64_t count = 1;
    for (int64_t extent : shape) count *= extent;
    tensors.push_back(MakeTensor(spec.name, DType::kF32, shape, std::vector<float>(count, 0.5f)));
  }
  if (!extra.empty()) tensors.push_back(MakeTensor(extra, DType::kF32, {1}, {1.0f}));
  EXPECT_TRUE(WriteSafetensors(dir.File("model.safetensors"), tensors).ok());
  absl::StatusOr<Checkpoint> checkpoint = Checkpoint::Open(dir.path());
  EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
  absl::StatusOr<ModelTensors> bound = BindModelTensors(config, *checkpoint);
  return bound.ok() ? "" : std::string(bound.status().message());
}

TEST(Weights, BindsEveryTensorOfAValidModel) { EXPECT_EQ(BindError("", "", ""), ""); }

TEST(Weights, ReportsMissingTensorByName) {
  EXPECT_THAT(BindError("model.layers.1.self_attn.g_proj.bias", "", ""),
              HasSubstr("missing tensors (1): model.layers.1.self_attn.g_proj.bias"));
}

TEST(Weights, ReportsWrongShapeByName) {
  EXPECT_THAT(BindError("", "model.layers.0.mlp.up_proj.weight", ""),
              HasSubstr("model.layers.0.mlp.up_proj.weight is [3, 3], expected [48, 32]"));
}

TEST(Weights, ReportsUnexpectedTensorByName) {
  EXPECT_THAT(BindError("", "", "model.layers.2.mlp.up_proj.weight"),
              HasSubstr("unexpected tensors (1): model.layers.2.mlp.up_proj.weight"));
}

TEST(Weights, SpecsFollowTheConfigsOptions) {
  ModelConfig config = testing::SmallConfig();
  config.norm = NormKind::kLayer;
  config.mlp = MlpKind::kGeluTanh;
  config.bias = true;
  config.tie_word_embeddings = false;
  std::vector<std::string> names;
  for (const TensorSpec& spec : ModelTensorSpecs(config)) names.push_back(spec.name);
  EXPECT_THAT(names,
              ::testing::IsSupersetOf({"model.layers.0.mlp.c_fc.bias",
                                       "model.layers.1.self_attn.o_proj.bias", "model.norm.bias",
                                       "lm_head.weight", "model.layers.0.input_layernorm.bias"}));
  EXPECT_THAT(names, ::testing::Not(::testing::Contains("model.layers.0.mlp.gate_proj.weight")));
}

TEST(Weights, LoadModelNamesTheDirectoryInErrors) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteRandomModel(dir.path(), testing::SmallConfig(), 1).ok());
  testing::WriteFile(dir.File("config.json"), "{\"architecture\": \"sympow\"}");
  absl::StatusOr<std::unique_ptr<LoadedModel>> model = LoadModel(dir.path());
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("field 'vocab_size' is required"));
  EXPECT_EQ(LoadModel(dir.File("absent")).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace sympow
