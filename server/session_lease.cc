#include "server/session_lease.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace sympow::server {
namespace {

// An flock held for one scope on `path` (created if needed).
class FileLock {
 public:
  explicit FileLock(const std::string& path) : fd_(open(path.c_str(), O_RDWR | O_CREAT, 0644)) {
    if (fd_ >= 0) locked_ = flock(fd_, LOCK_EX) == 0;
  }
  ~FileLock() {
    if (fd_ >= 0) close(fd_);  // closing releases the lock
  }
  bool locked() const { return locked_; }

 private:
  int fd_;
  bool locked_ = false;
};

struct Lease {
  std::string owner;
  absl::Time expires;
};

// The lease in `path`, or an expired one when there is none or it is unreadable.
Lease ReadLease(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json json = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("owner") || !json.contains("expires_unix_ms")) {
    return {"", absl::InfinitePast()};
  }
  return {json["owner"].get<std::string>(),
          absl::FromUnixMillis(json["expires_unix_ms"].get<int64_t>())};
}

absl::Status WriteLease(const std::string& path, const Lease& lease) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << nlohmann::json{{"owner", lease.owner},
                          {"expires_unix_ms", absl::ToUnixMillis(lease.expires)}}
               .dump();
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write lease ", temporary));
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) return absl::UnavailableError(absl::StrCat("cannot write lease ", path));
  return absl::OkStatus();
}

}  // namespace

SessionLeases::SessionLeases(std::string state_dir, std::string replica_id, absl::Duration ttl)
    : dir_((std::filesystem::path(state_dir) / "leases").string()),
      replica_id_(std::move(replica_id)),
      ttl_(ttl) {
  std::error_code error;
  std::filesystem::create_directories(dir_, error);
}

std::string SessionLeases::LeasePath(const std::string& session_id) const {
  return (std::filesystem::path(dir_) / (session_id + ".lease")).string();
}

absl::Status SessionLeases::Acquire(const std::string& session_id) {
  const std::string path = LeasePath(session_id);
  FileLock lock(path + ".lock");
  if (!lock.locked()) {
    return absl::UnavailableError(absl::StrCat("cannot lock the lease of session_id '", session_id,
                                               "' in ", dir_, "; retry shortly"));
  }
  const absl::Time now = absl::Now();
  const Lease current = ReadLease(path);
  if (current.owner != replica_id_ && current.expires > now) {
    return absl::UnavailableError(absl::StrCat(
        "session_id '", session_id, "' is served by replica '", current.owner, "'; retry in ",
        absl::FormatDuration(absl::Ceil(current.expires - now, absl::Milliseconds(100)))));
  }
  return WriteLease(path, {replica_id_, now + ttl_});
}

void SessionLeases::Release(const std::string& session_id) {
  const std::string path = LeasePath(session_id);
  FileLock lock(path + ".lock");
  if (lock.locked() && ReadLease(path).owner == replica_id_) {
    std::error_code error;
    std::filesystem::remove(path, error);
  }
}

}  // namespace sympow::server
