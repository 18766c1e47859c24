#include "server/snapshot.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/unit/model_files.h"

namespace sympow::server {
namespace {

using ::testing::HasSubstr;

Snapshot Sample(int64_t bytes) {
  Snapshot s;
  s.session_id = "s-0123";
  s.model_fingerprint = "abcd";
  s.token_count = 42;
  s.state_dtype = "float32";
  s.created = absl::FromUnixSeconds(1000);
  s.saved = absl::FromUnixSeconds(2000);
  for (int64_t i = 0; i < bytes; ++i) s.state.push_back(static_cast<std::byte>(i * 7));
  return s;
}

std::string ReadError(const std::string& path, int64_t bytes = 64,
                      const std::string& fingerprint = "abcd") {
  absl::StatusOr<Snapshot> read = ReadSnapshot(path, fingerprint, bytes);
  return read.ok() ? "" : std::string(read.status().message());
}

TEST(Snapshot, RoundTripsBitForBit) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteSnapshot(dir.path(), Sample(64)).ok());
  absl::StatusOr<Snapshot> read = ReadSnapshot(SnapshotPath(dir.path(), "s-0123"), "abcd", 64);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->state, Sample(64).state);
  EXPECT_EQ(read->token_count, 42);
  EXPECT_EQ(read->created, absl::FromUnixSeconds(1000));
  EXPECT_EQ(ListSnapshots(dir.path()),
            std::vector<std::string>{SnapshotPath(dir.path(), "s-0123")});
}

TEST(Snapshot, DetectsCorruptionTruncationAndForeignModels) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteSnapshot(dir.path(), Sample(64)).ok());
  const std::string path = SnapshotPath(dir.path(), "s-0123");
  const std::string good = testing::ReadFile(path);
  EXPECT_THAT(ReadError(path, 64, "ffff"), HasSubstr("not this one"));
  EXPECT_THAT(ReadError(path, 128), HasSubstr("state size does not match"));
  testing::WriteFile(path, good.substr(0, good.size() - 1));
  EXPECT_THAT(ReadError(path), HasSubstr("truncated"));
  std::string flipped = good;
  flipped.back() = static_cast<char>(flipped.back() ^ 1);
  testing::WriteFile(path, flipped);
  EXPECT_THAT(ReadError(path), HasSubstr("checksum mismatch"));
  testing::WriteFile(path, "XYMPOWSS" + good.substr(8));
  EXPECT_THAT(ReadError(path), HasSubstr("bad magic"));
  std::string version = good;
  version[8] = 9;
  testing::WriteFile(path, version);
  EXPECT_THAT(ReadError(path), HasSubstr("format version 9"));
}

TEST(Snapshot, AFailedWriteKeepsThePreviousSnapshot) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteSnapshot(dir.path(), Sample(64)).ok());
  // A directory where the temporary file would go makes the write fail, as a full disk would.
  std::filesystem::create_directory(SnapshotPath(dir.path(), "s-0123") + ".tmp");
  Snapshot newer = Sample(64);
  newer.token_count = 99;
  absl::Status status = WriteSnapshot(dir.path(), newer);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr(".tmp"));
  EXPECT_EQ(ReadSnapshot(SnapshotPath(dir.path(), "s-0123"), "abcd", 64)->token_count, 42);
}

}  // namespace
}  // namespace sympow::server
