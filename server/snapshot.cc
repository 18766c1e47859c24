#include "server/snapshot.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace sympow::server {
namespace {

namespace fs = std::filesystem;
constexpr char kMagic[8] = {'S', 'Y', 'M', 'P', 'O', 'W', 'S', 'S'};
constexpr char kSuffix[] = ".snapshot";

uint32_t Crc32(const std::vector<std::byte>& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes at most 4 GiB per call.
  for (size_t offset = 0; offset < bytes.size(); offset += 1u << 30) {
    const size_t n = std::min<size_t>(1u << 30, bytes.size() - offset);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + offset), static_cast<uInt>(n));
  }
  return static_cast<uint32_t>(crc);
}

absl::Status WriteAll(int fd, const void* data, size_t size, const std::string& path) {
  const char* cursor = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = ::write(fd, cursor, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat(path, ": write failed: ", std::strerror(errno)));
    }
    cursor += written;
    size -= static_cast<size_t>(written);
  }
  return absl::OkStatus();
}

}  // namespace

std::string SnapshotPath(const std::string& dir, const std::string& session_id) {
  return (fs::path(dir) / (session_id + kSuffix)).string();
}

absl::Status WriteSnapshot(const std::string& dir, const Snapshot& snapshot) {
  const nlohmann::json header = {
      {"session_id", snapshot.session_id},
      {"model_fingerprint", snapshot.model_fingerprint},
      {"token_count", snapshot.token_count},
      {"state_bytes", snapshot.state.size()},
      {"state_dtype", snapshot.state_dtype},
      {"created_unix_ns", absl::ToUnixNanos(snapshot.created)},
      {"saved_unix_ns", absl::ToUnixNanos(snapshot.saved)},
      {"state_crc32", Crc32(snapshot.state)},
  };
  const std::string header_text = header.dump();
  const uint32_t version = kSnapshotFormatVersion;
  const uint32_t header_size = static_cast<uint32_t>(header_text.size());
  const std::string path = SnapshotPath(dir, snapshot.session_id);
  const std::string temporary = path + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return absl::UnavailableError(
        absl::StrCat(temporary, ": cannot create: ", std::strerror(errno)));
  absl::Status status = WriteAll(fd, kMagic, sizeof kMagic, temporary);
  if (status.ok()) status = WriteAll(fd, &version, sizeof version, temporary);
  if (status.ok()) status = WriteAll(fd, &header_size, sizeof header_size, temporary);
  if (status.ok()) status = WriteAll(fd, header_text.data(), header_text.size(), temporary);
  if (status.ok()) status = WriteAll(fd, snapshot.state.data(), snapshot.state.size(), temporary);
  if (status.ok() && ::fsync(fd) != 0) {
    status =
        absl::UnavailableError(absl::StrCat(temporary, ": fsync failed: ", std::strerror(errno)));
  }
  ::close(fd);
  if (status.ok() && ::rename(temporary.c_str(), path.c_str()) != 0) {
    status = absl::UnavailableError(absl::StrCat(path, ": rename failed: ", std::strerror(errno)));
  }
  if (!status.ok()) {
    ::unlink(temporary.c_str());  // the previous snapshot, if any, stays as it was
    return status;
  }
  // The rename is durable once the directory entry is.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return absl::OkStatus();
}

absl::StatusOr<Snapshot> ReadSnapshot(const std::string& path, const std::string& model_fingerprint,
                                      int64_t state_bytes) {
  auto corrupt = [&](absl::string_view problem) {
    return absl::DataLossError(absl::StrCat(path, ": ", problem));
  };
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  const int64_t file_size = static_cast<int64_t>(in.tellg());
  in.seekg(0);
  char magic[sizeof kMagic];
  uint32_t version = 0, header_size = 0;
  if (!in.read(magic, sizeof magic) || std::memcmp(magic, kMagic, sizeof kMagic) != 0) {
    return corrupt("not a sympow snapshot (bad magic)");
  }
  if (!in.read(reinterpret_cast<char*>(&version), sizeof version) ||
      version != kSnapshotFormatVersion) {
    return corrupt(absl::StrCat("format version ", version, " is not ", kSnapshotFormatVersion));
  }
  if (!in.read(reinterpret_cast<char*>(&header_size), sizeof header_size) ||
      header_size > file_size - static_cast<int64_t>(sizeof magic + 8)) {
    return corrupt("truncated header");
  }
  std::string header_text(header_size, '\0');
  in.read(header_text.data(), header_size);
  const nlohmann::json header = nlohmann::json::parse(header_text, nullptr, false);
  if (header.is_discarded() || !header.is_object()) return corrupt("header is not JSON");
  Snapshot snapshot;
  try {
    snapshot.session_id = header.at("session_id").get<std::string>();
    snapshot.model_fingerprint = header.at("model_fingerprint").get<std::string>();
    snapshot.token_count = header.at("token_count").get<int64_t>();
    snapshot.state_dtype = header.at("state_dtype").get<std::string>();
    snapshot.created = absl::FromUnixNanos(header.at("created_unix_ns").get<int64_t>());
    snapshot.saved = absl::FromUnixNanos(header.at("saved_unix_ns").get<int64_t>());
    if (snapshot.model_fingerprint != model_fingerprint) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": made by model ", snapshot.model_fingerprint, ", not this one (",
                       model_fingerprint, ")"));
    }
    if (header.at("state_bytes").get<int64_t>() != state_bytes)
      return corrupt("state size does not match the model");
    const int64_t expected_size =
        static_cast<int64_t>(sizeof kMagic + 8 + header_size) + state_bytes;
    if (file_size != expected_size) {
      return corrupt(
          absl::StrCat("is ", file_size, " bytes, expected ", expected_size, " (truncated?)"));
    }
    snapshot.state.resize(state_bytes);
    in.read(reinterpret_cast<char*>(snapshot.state.data()), state_bytes);
    if (!in || Crc32(snapshot.state) != header.at("state_crc32").get<uint32_t>()) {
      return corrupt("state checksum mismatch");
    }
  } catch (const nlohmann::json::exception& e) {
    return corrupt(absl::StrCat("header field missing or mistyped: ", e.what()));
  }
  return snapshot;
}

std::vector<std::string> ListSnapshots(const std::string& dir) {
  std::vector<std::string> paths;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    if (entry.is_regular_file() && entry.path().extension() == kSuffix)
      paths.push_back(entry.path().string());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

absl::Status RemoveSnapshot(const std::string& dir, const std::string& session_id) {
  std::error_code error;
  fs::remove(SnapshotPath(dir, session_id), error);
  if (error)
    return absl::UnavailableError(
        absl::StrCat(SnapshotPath(dir, session_id), ": ", error.message()));
  return absl::OkStatus();
}

absl::Status ProbeStateDir(const std::string& dir) {
  const std::filesystem::path probe = std::filesystem::path(dir) / ".probe";
  {
    std::ofstream out(probe, std::ios::trunc);
    out << "sympow";
    if (!out) return absl::UnavailableError(absl::StrCat(dir, ": cannot write there"));
  }
  std::error_code error;
  std::filesystem::remove(probe, error);
  if (error) return absl::UnavailableError(absl::StrCat(dir, ": ", error.message()));
  return absl::OkStatus();
}

}  // namespace sympow::server
