// Where each session's state lives: a backend state slot ("device": GPU memory for the CUDA
// backend), host memory, or a spill file. When every slot is taken, the least recently used state
// that the current call does not need moves to host memory; beyond the host budget, the least
// recently used host state moves to a spill file. A state comes back to a slot when a call needs
// it. Every move copies the state's bytes unchanged, so a round trip is bit-identical.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/backend.h"

namespace sympow {

using SessionId = uint64_t;

enum class StateTier { kDevice, kHost, kDisk };

struct StateTierOptions {
  int64_t host_bytes = 0;  // host memory for states moved out of slots; 0: no host tier
  std::string spill_dir;   // spill files beyond host_bytes; empty: no disk tier
};

struct StateTierCounts {
  int64_t device = 0, host = 0, disk = 0;
  int64_t host_bytes = 0;  // in use
};

class StateTiers {
 public:
  StateTiers(Backend& backend, StateTierOptions options);
  ~StateTiers();  // deletes the spill files: they live only as long as the process
  StateTiers(const StateTiers&) = delete;
  StateTiers& operator=(const StateTiers&) = delete;

  // A new zeroed state for `id` in a slot. `keep`: sessions whose slots must not be given up
  // (those of the current call). RESOURCE_EXHAUSTED when no slot can be freed.
  absl::Status Add(SessionId id, std::span<const SessionId> keep = {});
  // The slot holding `id`'s state, bringing it back from host memory or disk if needed.
  absl::StatusOr<int32_t> Slot(SessionId id, std::span<const SessionId> keep = {});
  // The state's bytes, wherever it is (a spill file is read and checked, not brought back), into
  // `to` (StateLayout::Bytes() long).
  absl::Status Read(SessionId id, std::span<std::byte> to);
  void Remove(SessionId id);
  // An in-use state (a request is running on it) is never moved out of its slot for another.
  void SetInUse(SessionId id, bool in_use);

  StateTier TierOf(SessionId id) const;
  StateTierCounts Counts() const;

 private:
  struct Entry {
    int32_t slot = -1;                            // device tier
    HostBuffer host{nullptr, [](std::byte*) {}};  // host tier: a whole state
    std::string file;                             // disk tier
    uint64_t last_used = 0;
    StateTier tier = StateTier::kDevice;
    bool in_use = false;
  };

  // A free slot, moving the least recently used evictable state out of its slot if needed.
  absl::StatusOr<int32_t> FreeSlot(std::span<const SessionId> keep);
  // Moves host states to spill files until the host tier fits its budget.
  absl::Status FitHostBudget();
  absl::Status WriteSpill(SessionId id, Entry& entry);
  std::span<std::byte> HostBytes(const Entry& entry) const {
    return {entry.host.get(), static_cast<size_t>(state_bytes_)};
  }
  absl::Status ReadSpill(const std::string& file, std::span<std::byte> to) const;

  Backend& backend_;
  StateTierOptions options_;
  int64_t state_bytes_;
  std::map<SessionId, Entry> entries_;
  uint64_t clock_ = 0;
  int64_t host_in_use_ = 0;
};

}  // namespace sympow
