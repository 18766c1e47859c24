// Limits the service enforces on requests.
#pragma once

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace sympow::server {

struct ServiceLimits {
  int64_t max_sessions = 256;
  int64_t max_prompt_tokens = 1 << 20;
  int64_t max_new_tokens = 4096;         // the most a request may ask for
  int64_t default_max_new_tokens = 256;  // when a request asks for 0
  int64_t max_queued_requests = 256;
  std::string model_path;
  // Where session snapshots live; empty: sessions end with the process.
  std::string state_dir;
  std::string model_fingerprint;  // written into snapshots, checked when they are read
  // The state pool's capacity, for GetModelInfo.
  int64_t state_slots = 0;
  int64_t host_state_bytes = 0;
  bool disk_tier = false;
  // Several replicas sharing state_dir: this one's name, and how long its session leases last
  // without renewal. Empty: a single server that owns every snapshot in state_dir.
  std::string replica_id;
  absl::Duration lease_ttl = absl::Seconds(10);
};

}  // namespace sympow::server
