// Limits the service enforces on requests.
#pragma once

#include <cstdint>
#include <string>

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
};

}  // namespace sympow::server
