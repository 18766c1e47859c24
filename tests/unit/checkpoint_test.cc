#include "model/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/safetensors_writer.h"
#include "tests/unit/model_files.h"

namespace sympow {
namespace {

using ::testing::HasSubstr;

TensorToWrite Small(const std::string& name) {
  return MakeTensor(name, DType::kF32, {2}, {1.0f, 2.0f});
}

// Two shards: a, b in the first, c in the second, and an index listing `weight_map`.
void WriteShards(const testing::TempDir& dir, const std::string& weight_map) {
  ASSERT_TRUE(WriteSafetensors(dir.File("s1.safetensors"), {Small("a"), Small("b")}).ok());
  ASSERT_TRUE(WriteSafetensors(dir.File("s2.safetensors"), {Small("c")}).ok());
  testing::WriteFile(dir.File("model.safetensors.index.json"),
                     "{\"weight_map\": " + weight_map + "}");
}

std::string OpenError(const testing::TempDir& dir) {
  absl::StatusOr<Checkpoint> checkpoint = Checkpoint::Open(dir.path());
  return checkpoint.ok() ? "" : std::string(checkpoint.status().message());
}

TEST(Checkpoint, OpensSingleFile) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteSafetensors(dir.File("model.safetensors"), {Small("a")}).ok());
  absl::StatusOr<Checkpoint> checkpoint = Checkpoint::Open(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  ASSERT_NE(checkpoint->Find("a"), nullptr);
  EXPECT_EQ(checkpoint->Find("a")->ToFloat(), (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(checkpoint->Find("b"), nullptr);
}

TEST(Checkpoint, OpensShardsListedInIndex) {
  testing::TempDir dir;
  WriteShards(dir, R"({"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"})");
  absl::StatusOr<Checkpoint> checkpoint = Checkpoint::Open(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->tensors().size(), 3u);
  EXPECT_THAT(checkpoint->Find("c")->file, HasSubstr("s2.safetensors"));
}

TEST(Checkpoint, RejectsIndexedTensorMissingFromShard) {
  testing::TempDir dir;
  WriteShards(dir, R"({"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors",
                      "d": "s2.safetensors"})");
  EXPECT_THAT(OpenError(dir), HasSubstr("tensor 'd' is missing from shard 's2.safetensors'"));
}

TEST(Checkpoint, RejectsShardTensorNotInIndex) {
  testing::TempDir dir;
  WriteShards(dir, R"({"a": "s1.safetensors", "c": "s2.safetensors"})");
  EXPECT_THAT(OpenError(dir), HasSubstr("tensor 'b' is not listed for this shard"));
}

TEST(Checkpoint, RejectsMissingShardFile) {
  testing::TempDir dir;
  WriteShards(dir, R"({"a": "s1.safetensors", "b": "s1.safetensors", "c": "s3.safetensors"})");
  EXPECT_THAT(OpenError(dir), HasSubstr("s3.safetensors: cannot open"));
}

TEST(Checkpoint, RejectsShardOutsideModelDirectory) {
  testing::TempDir dir;
  WriteShards(dir, R"({"a": "../s1.safetensors"})");
  EXPECT_THAT(OpenError(dir), HasSubstr("not a file in the model directory"));
}

TEST(Checkpoint, RejectsMalformedIndex) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("model.safetensors.index.json"), "{\"weights\": {}}");
  EXPECT_THAT(OpenError(dir), HasSubstr("missing object 'weight_map'"));
  testing::WriteFile(dir.File("model.safetensors.index.json"), "not json");
  EXPECT_THAT(OpenError(dir), HasSubstr("not a JSON object"));
}

TEST(Checkpoint, ReportsMissingModelFile) {
  testing::TempDir dir;
  EXPECT_THAT(OpenError(dir), HasSubstr("model.safetensors: cannot open"));
}

}  // namespace
}  // namespace sympow
