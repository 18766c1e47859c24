// Session snapshot files: a session's state on disk, written atomically and checked on reading.
//
// Layout: "SYMPOWSS", u32 format version, u32 header length, the JSON header (session id, model
// fingerprint, token count, state bytes and dtype, times, CRC-32 of the state), the state bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sympow::server {

inline constexpr uint32_t kSnapshotFormatVersion = 1;

struct Snapshot {
  std::string session_id;
  std::string model_fingerprint;
  int64_t token_count = 0;
  std::string state_dtype;
  absl::Time created;
  absl::Time saved;
  std::vector<std::byte> state;
};

// Writes `dir`/<session_id>.snapshot via a temporary file, fsync and rename: a crash leaves the
// previous snapshot or the new one, never a torn file.
absl::Status WriteSnapshot(const std::string& dir, const Snapshot& snapshot);
// Reads and checks a snapshot: magic, version, header, that it was made by `model_fingerprint`
// with states of `state_bytes`, its length and its checksum. Errors name the file and the fault.
absl::StatusOr<Snapshot> ReadSnapshot(const std::string& path, const std::string& model_fingerprint,
                                      int64_t state_bytes);
std::string SnapshotPath(const std::string& dir, const std::string& session_id);
// Snapshot files in `dir` (*.snapshot), sorted.
std::vector<std::string> ListSnapshots(const std::string& dir);
absl::Status RemoveSnapshot(const std::string& dir, const std::string& session_id);
// OK when `dir` exists and a file can be written there and removed.
absl::Status ProbeStateDir(const std::string& dir);

}  // namespace sympow::server
