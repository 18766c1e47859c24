// Session leases in a snapshot directory that several replicas share: a session is served by the
// replica holding its lease, which renews it while it holds the session; a lease its owner stopped
// renewing (a crash, kill -9) expires, and another replica takes the session over from its last
// snapshot. Each decision runs under an flock on the session's lock file, so two replicas racing
// for one session cannot both win.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace sympow::server {

class SessionLeases {
 public:
  SessionLeases(std::string state_dir, std::string replica_id, absl::Duration ttl);

  // Takes or renews the lease on `session_id`; UNAVAILABLE naming the owner (with a retry hint)
  // while another replica's lease is live.
  absl::Status Acquire(const std::string& session_id);
  // Gives the lease up if this replica holds it.
  void Release(const std::string& session_id);

  const std::string& replica_id() const { return replica_id_; }
  absl::Duration ttl() const { return ttl_; }

 private:
  std::string LeasePath(const std::string& session_id) const;

  std::string dir_;
  std::string replica_id_;
  absl::Duration ttl_;
};

}  // namespace sympow::server
