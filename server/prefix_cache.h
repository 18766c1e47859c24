// The prefix-state cache: states after token prefixes, in host memory under a byte budget, so a
// new session or an ephemeral request that starts with a cached prefix (a system prompt, a shared
// document, a whole earlier conversation) skips prefilling it. What is kept follows Marconi
// (MLSys 2025): the states at sequence ends (the end of every request: the next turn extends
// them) and at branch points (where a new prompt leaves one seen before: the shared prefix, which
// reuse has just shown to be shared), and chunk boundaries seen a second time. Eviction weighs
// recency against tokens saved (every state costs the same bytes, so saved tokens per byte is the
// prefix length). A hit can be any length: keys are per-token prefix hashes (model/prefix_key.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "model/backend.h"
#include "model/prefix_key.h"

namespace sympow::server {

struct PrefixCacheOptions {
  int64_t max_bytes = 0;        // host memory for cached states; 0: no cache
  int64_t min_tokens = 16;      // shorter prefixes are not worth a state
  int64_t recent_prompts = 64;  // prompts remembered to find branch points
};

struct PrefixCacheStats {
  int64_t hits = 0, misses = 0, saved_tokens = 0, entries = 0, bytes = 0;
};

class PrefixCache {
 public:
  // `allocate` gives host memory for one state: the backend's, pinned on a GPU, so that states
  // cross to and from the device at full speed. Buffers of evicted states are reused.
  PrefixCache(PrefixCacheOptions options, int64_t state_bytes,
              std::function<HostBuffer()> allocate);

  bool enabled() const { return options_.max_bytes >= state_bytes_; }

  struct Hit {
    PrefixKey key;
    std::span<const std::byte> state;  // valid until the next Insert
  };
  // The longest cached prefix of `tokens` at most `limit` tokens long; counts a hit or a miss.
  std::optional<Hit> Lookup(std::span<const int32_t> tokens, int64_t limit);
  // Where `tokens` leaves the longest prompt seen recently, when that shared prefix is long
  // enough and not cached yet; then remembers `tokens` as seen.
  std::optional<int64_t> BranchPoint(std::span<const int32_t> tokens);
  // True when a chunk boundary's key was seen before (so its state is worth keeping).
  bool SeenBefore(const PrefixKey& key);
  // Whether Insert would keep a state after `key` (so callers read the state only then).
  bool Wants(const PrefixKey& key) const;
  // Memory for a state to Insert: a recycled buffer, or a new one.
  HostBuffer Buffer();
  // Takes back a buffer from Buffer() that will not be inserted (its state could not be read).
  void Recycle(HostBuffer buffer);
  // Keeps the state after `key` (no-op unless Wants), evicting to fit the budget.
  // A sequence end names its `owner` (the session): it replaces that owner's previous end, which
  // the session has moved past, so one long conversation holds one cached state, not one a turn.
  void Insert(const PrefixKey& key, HostBuffer state, uint64_t owner = 0);

  PrefixCacheStats stats() const;

 private:
  struct Entry {
    HostBuffer state;
    uint64_t last_used = 0;
  };
  void EvictOne();
  void Erase(const PrefixKey& key);

  PrefixCacheOptions options_;
  int64_t state_bytes_;
  std::function<HostBuffer()> allocate_;
  std::vector<HostBuffer> free_buffers_;
  absl::flat_hash_map<PrefixKey, Entry> entries_;
  absl::flat_hash_map<int64_t, int64_t> lengths_;  // prefix lengths cached, with counts
  absl::flat_hash_map<PrefixKey, int64_t> boundaries_seen_;
  absl::flat_hash_map<uint64_t, PrefixKey> latest_end_;  // by owner
  std::deque<std::vector<int32_t>> recent_;
  uint64_t clock_ = 0;
  int64_t hits_ = 0, misses_ = 0, saved_tokens_ = 0;
};

}  // namespace sympow::server
