// The server's named sessions: public ids, engine sessions, times, and who is using them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "model/engine.h"
#include "server/request.h"

namespace sympow::server {

struct SessionRecord {
  std::string id;
  SessionId engine_session = 0;
  absl::Time created;
  absl::Time last_used;
  bool busy = false;
  bool ephemeral = false;  // made for one Generate call, deleted after it
  bool deleting = false;   // deleted while busy: goes when its call ends
};

class SessionRegistry {
 public:
  explicit SessionRegistry(int64_t max_sessions) : max_sessions_(max_sessions) {}

  // RESOURCE_EXHAUSTED when max_sessions exist (checked before an engine session is made).
  absl::Status CheckCapacity() const;
  // Registers an engine session under `id`, or a new random id when it is empty;
  // ALREADY_EXISTS when `id` is taken.
  absl::StatusOr<SessionRecord> Add(SessionId engine_session, bool ephemeral,
                                    const std::string& id = "");
  // Registers a session restored from a snapshot under its old id and times.
  void AddRestored(const SessionRecord& record);
  // Marks the session busy for one call; NOT_FOUND or FAILED_PRECONDITION (already busy).
  absl::StatusOr<SessionRecord> Acquire(const std::string& id);
  absl::StatusOr<SessionRecord> Get(const std::string& id) const;
  // Removes an idle session and returns it; FAILED_PRECONDITION while busy.
  absl::StatusOr<SessionRecord> Remove(const std::string& id, bool even_if_busy = false);
  // The request a busy session is running, so that deleting the session can cancel it.
  void SetRunning(const std::string& id, std::weak_ptr<Request> request);
  // Deletes an idle session now and returns it. A busy one is marked and its request cancelled;
  // it goes when its call ends (EndCall), and nullopt is returned.
  absl::StatusOr<std::optional<SessionRecord>> Delete(const std::string& id);
  bool Deleting(const std::string& id) const;
  // Ends a call: releases the session, or removes and returns it if it was deleted meanwhile.
  std::optional<SessionRecord> EndCall(const std::string& id);
  // Up to `limit` sessions with ids after `after`, in id order, and whether more follow.
  std::vector<SessionRecord> List(const std::string& after, int64_t limit, bool* more) const;
  int64_t size() const;

 private:
  int64_t max_sessions_;
  mutable absl::Mutex mutex_;
  std::map<std::string, SessionRecord> sessions_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, std::weak_ptr<Request>> running_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace sympow::server
