#include "model/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "model/safetensors_writer.h"
#include "tests/unit/model_files.h"

namespace sympow {
namespace {

using ::testing::HasSubstr;

// A file of an 8-byte length, `header` and `data_bytes` zero bytes.
std::string RawFile(const std::string& header, size_t data_bytes) {
  const uint64_t size = header.size();
  std::string bytes(reinterpret_cast<const char*>(&size), 8);
  return bytes + header + std::string(data_bytes, '\0');
}

std::string OpenError(const std::string& contents) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("m.safetensors"), contents);
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open(dir.File("m.safetensors"));
  return file.ok() ? "" : std::string(file.status().message());
}

TEST(Safetensors, ReadsEveryDtypeBackExactly) {
  testing::TempDir dir;
  const std::vector<float> values = {1.0f, -2.5f, 0.1f, 3e-3f, 65504.0f, -0.0f};
  std::vector<TensorToWrite> tensors = {MakeTensor("a.f32", DType::kF32, {2, 3}, values),
                                        MakeTensor("b.bf16", DType::kBF16, {6}, values),
                                        MakeTensor("c.f16", DType::kF16, {3, 2}, values)};
  ASSERT_TRUE(WriteSafetensors(dir.File("m.safetensors"), tensors, {{"format", "pt"}}).ok());
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open(dir.File("m.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  ASSERT_EQ((*file)->tensors().size(), 3u);
  EXPECT_EQ((*file)->tensors().at("a.f32").ToFloat(), values);
  EXPECT_EQ((*file)->tensors().at("a.f32").shape, (std::vector<int64_t>{2, 3}));
  const std::vector<float> bf16 = (*file)->tensors().at("b.bf16").ToFloat();
  const std::vector<float> f16 = (*file)->tensors().at("c.f16").ToFloat();
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_NEAR(bf16[i], values[i], std::abs(values[i]) / 256) << i;  // 8 significant bits
    EXPECT_NEAR(f16[i], values[i], std::abs(values[i]) / 2048) << i;  // 11 significant bits
  }
  EXPECT_EQ(bf16[0], 1.0f);
  EXPECT_EQ(f16[4], 65504.0f);
}

TEST(Safetensors, RejectsShortFile) {
  EXPECT_THAT(OpenError("abc"), HasSubstr("too short for a header"));
}

TEST(Safetensors, RejectsHeaderLongerThanFile) {
  std::string bytes = RawFile("{}", 0);
  const uint64_t huge = 1000;
  std::memcpy(bytes.data(), &huge, 8);
  EXPECT_THAT(OpenError(bytes), HasSubstr("header length 1000 exceeds the file"));
}

TEST(Safetensors, RejectsHeaderThatIsNotJson) {
  EXPECT_THAT(OpenError(RawFile("{\"a\": [", 0)), HasSubstr("header is not valid JSON"));
  EXPECT_THAT(OpenError(RawFile("[1,2]   ", 0)), HasSubstr("header is not a JSON object"));
}

TEST(Safetensors, RejectsUnsupportedDtype) {
  EXPECT_THAT(OpenError(RawFile(R"({"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8)),
              HasSubstr("tensor 'w': unsupported dtype 'I64'"));
}

TEST(Safetensors, RejectsShapeThatDisagreesWithBytes) {
  EXPECT_THAT(OpenError(RawFile(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
              HasSubstr("tensor 'w': shape [3] of F32 needs 12 bytes but data_offsets span 8"));
}

TEST(Safetensors, RejectsBadShapeEntries) {
  EXPECT_THAT(OpenError(RawFile(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)),
              HasSubstr("shape entry -1 is not a non-negative integer"));
  EXPECT_THAT(OpenError(RawFile(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4)),
              HasSubstr("missing array 'shape'"));
}

TEST(Safetensors, RejectsOffsetsOutsideTheFile) {
  EXPECT_THAT(OpenError(RawFile(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 8)),
              HasSubstr("data_offsets end 12 lies outside the data section (8 bytes)"));
  EXPECT_THAT(OpenError(RawFile(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8)),
              HasSubstr("are reversed"));
  EXPECT_THAT(OpenError(RawFile(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8)),
              HasSubstr("'data_offsets' must be [begin, end]"));
}

TEST(Safetensors, RejectsOverlappingTensors) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  EXPECT_THAT(OpenError(RawFile(header, 12)), HasSubstr("tensors 'a' and 'b' overlap"));
}

TEST(Safetensors, RejectsHolesBetweenTensors) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  EXPECT_THAT(OpenError(RawFile(header, 12)), HasSubstr("unused bytes [4, 8) before tensor 'b'"));
}

TEST(Safetensors, RejectsTrailingGarbage) {
  EXPECT_THAT(OpenError(RawFile(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 9)),
              HasSubstr("5 trailing bytes after the last tensor"));
}

TEST(Safetensors, RejectsBadMetadata) {
  EXPECT_THAT(OpenError(RawFile(R"({"__metadata__":{"k":1}})", 0)),
              HasSubstr("__metadata__ 'k' must be a string"));
}

TEST(Safetensors, ReportsMissingFile) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open("/nonexistent.safetensors");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("/nonexistent.safetensors"));
}

}  // namespace
}  // namespace sympow
