#include "server/session_registry.h"

#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sympow::server {
namespace {

absl::Status NotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("session_id '", id, "' does not exist"));
}

std::string NewSessionId() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("s-%016x%08x", rng(), static_cast<uint32_t>(rng()));
}

}  // namespace

absl::Status SessionRegistry::CheckCapacity() const {
  absl::MutexLock lock(&mutex_);
  if (static_cast<int64_t>(sessions_.size()) >= max_sessions_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "all ", max_sessions_, " sessions are in use (--max_sessions); delete one first"));
  }
  return absl::OkStatus();
}

absl::StatusOr<SessionRecord> SessionRegistry::Add(SessionId engine_session, bool ephemeral,
                                                   const std::string& id) {
  const absl::Time now = absl::Now();
  SessionRecord record{
      id.empty() ? NewSessionId() : id, engine_session, now, now, ephemeral, ephemeral};
  absl::MutexLock lock(&mutex_);
  if (!sessions_.emplace(record.id, record).second) {
    return absl::AlreadyExistsError(absl::StrCat("session_id '", id, "' already exists"));
  }
  return record;
}

void SessionRegistry::AddRestored(const SessionRecord& record) {
  absl::MutexLock lock(&mutex_);
  sessions_[record.id] = record;
}

absl::StatusOr<SessionRecord> SessionRegistry::Acquire(const std::string& id) {
  absl::MutexLock lock(&mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return NotFound(id);
  if (it->second.busy) {
    return absl::FailedPreconditionError(
        absl::StrCat("session_id '", id, "' is busy with another Generate or Append call"));
  }
  it->second.busy = true;
  it->second.last_used = absl::Now();
  return it->second;
}

absl::StatusOr<SessionRecord> SessionRegistry::Get(const std::string& id) const {
  absl::MutexLock lock(&mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return NotFound(id);
  return it->second;
}

absl::StatusOr<SessionRecord> SessionRegistry::Remove(const std::string& id, bool even_if_busy) {
  absl::MutexLock lock(&mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return NotFound(id);
  if (it->second.busy && !even_if_busy) {
    return absl::FailedPreconditionError(
        absl::StrCat("session_id '", id, "' is busy; cancel its call first"));
  }
  SessionRecord record = it->second;
  sessions_.erase(it);
  return record;
}

void SessionRegistry::SetRunning(const std::string& id, std::weak_ptr<Request> request) {
  absl::MutexLock lock(&mutex_);
  running_[id] = std::move(request);
}

absl::StatusOr<std::optional<SessionRecord>> SessionRegistry::Delete(const std::string& id) {
  absl::MutexLock lock(&mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.deleting) return NotFound(id);
  if (!it->second.busy) {
    SessionRecord record = it->second;
    sessions_.erase(it);
    return std::optional<SessionRecord>(record);
  }
  it->second.deleting = true;
  if (std::shared_ptr<Request> request = running_[id].lock()) request->cancelled = true;
  return std::optional<SessionRecord>();
}

bool SessionRegistry::Deleting(const std::string& id) const {
  absl::MutexLock lock(&mutex_);
  auto it = sessions_.find(id);
  return it != sessions_.end() && it->second.deleting;
}

std::optional<SessionRecord> SessionRegistry::EndCall(const std::string& id) {
  absl::MutexLock lock(&mutex_);
  running_.erase(id);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  if (!it->second.deleting) {
    it->second.busy = false;
    it->second.last_used = absl::Now();
    return std::nullopt;
  }
  SessionRecord record = it->second;
  sessions_.erase(it);
  return record;
}

std::vector<SessionRecord> SessionRegistry::List(const std::string& after, int64_t limit,
                                                 bool* more) const {
  absl::MutexLock lock(&mutex_);
  std::vector<SessionRecord> page;
  *more = false;
  // Ephemeral sessions (one Generate call's) are not listed, nor counted towards `more`.
  for (auto it = after.empty() ? sessions_.begin() : sessions_.upper_bound(after);
       it != sessions_.end(); ++it) {
    if (it->second.ephemeral) continue;
    if (static_cast<int64_t>(page.size()) == limit) {
      *more = true;
      break;
    }
    page.push_back(it->second);
  }
  return page;
}

int64_t SessionRegistry::size() const {
  absl::MutexLock lock(&mutex_);
  return static_cast<int64_t>(sessions_.size());
}

}  // namespace sympow::server
