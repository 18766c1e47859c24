#include "model/state_tiers.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sympow {
namespace {

// A spill file: magic, payload size, CRC-32 of the payload, then the payload.
constexpr char kSpillMagic[8] = {'S', 'Y', 'M', 'P', 'S', 'P', 'L', '1'};
struct SpillHeader {
  char magic[8];
  uint64_t bytes;
  uint32_t crc;
  uint32_t reserved;
};

uint32_t Crc32(std::span<const std::byte> data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  size_t done = 0;
  while (done < data.size()) {  // crc32 takes at most 4 GiB at a time
    const size_t n = std::min<size_t>(data.size() - done, size_t{1} << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data.data() + done), static_cast<uInt>(n));
    done += n;
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace

StateTiers::StateTiers(Backend& backend, StateTierOptions options)
    : backend_(backend),
      options_(std::move(options)),
      state_bytes_(backend.state_layout().Bytes()) {
  // Spill files live only as long as their process: a crash's leftovers are of no use.
  std::error_code error;
  if (options_.spill_dir.empty()) return;
  for (const auto& file : std::filesystem::directory_iterator(options_.spill_dir, error)) {
    if (file.path().extension() == ".spill") std::filesystem::remove(file.path(), error);
  }
}

StateTiers::~StateTiers() {
  for (auto& [id, entry] : entries_) {
    if (!entry.file.empty()) std::filesystem::remove(entry.file);
  }
}

absl::Status StateTiers::Add(SessionId id, std::span<const SessionId> keep) {
  absl::StatusOr<int32_t> slot = FreeSlot(keep);
  if (!slot.ok()) return slot.status();
  Entry& entry = entries_[id];
  entry.slot = *slot;
  entry.last_used = ++clock_;
  return absl::OkStatus();
}

absl::StatusOr<int32_t> StateTiers::Slot(SessionId id, std::span<const SessionId> keep) {
  Entry& entry = entries_.at(id);
  entry.last_used = ++clock_;
  if (entry.tier == StateTier::kDevice) return entry.slot;
  std::vector<SessionId> kept(keep.begin(), keep.end());
  kept.push_back(id);
  absl::StatusOr<int32_t> slot = FreeSlot(kept);
  if (!slot.ok()) return slot.status();
  if (entry.tier == StateTier::kHost) {
    backend_.WriteStateSlot(*slot, HostBytes(entry));
    host_in_use_ -= state_bytes_;
    entry.host.reset();
  } else {
    std::vector<std::byte> bytes(state_bytes_);
    if (absl::Status read = ReadSpill(entry.file, bytes); !read.ok()) {
      backend_.ReleaseStateSlot(*slot);
      return read;
    }
    backend_.WriteStateSlot(*slot, bytes);
    std::filesystem::remove(entry.file);
    entry.file.clear();
  }
  entry.slot = *slot;
  entry.tier = StateTier::kDevice;
  return entry.slot;
}

absl::Status StateTiers::Read(SessionId id, std::span<std::byte> to) {
  if (static_cast<int64_t>(to.size()) != state_bytes_) {
    return absl::InvalidArgumentError(
        absl::StrCat("a state is ", state_bytes_, " bytes, not ", to.size()));
  }
  Entry& entry = entries_.at(id);
  switch (entry.tier) {
    case StateTier::kDevice:
      backend_.ReadStateSlot(entry.slot, to);
      return absl::OkStatus();
    case StateTier::kHost:
      std::ranges::copy(HostBytes(entry), to.begin());
      return absl::OkStatus();
    case StateTier::kDisk:
      return ReadSpill(entry.file, to);
  }
  return absl::InternalError("unknown state tier");
}

void StateTiers::Remove(SessionId id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  Entry& entry = it->second;
  if (entry.tier == StateTier::kDevice) backend_.ReleaseStateSlot(entry.slot);
  if (entry.tier == StateTier::kHost) host_in_use_ -= state_bytes_;
  if (entry.tier == StateTier::kDisk) std::filesystem::remove(entry.file);
  entries_.erase(it);
}

void StateTiers::SetInUse(SessionId id, bool in_use) {
  if (auto it = entries_.find(id); it != entries_.end()) it->second.in_use = in_use;
}

StateTier StateTiers::TierOf(SessionId id) const { return entries_.at(id).tier; }

StateTierCounts StateTiers::Counts() const {
  StateTierCounts counts;
  for (const auto& [id, entry] : entries_) {
    ++(entry.tier == StateTier::kDevice ? counts.device
       : entry.tier == StateTier::kHost ? counts.host
                                        : counts.disk);
  }
  counts.host_bytes = host_in_use_;
  return counts;
}

absl::StatusOr<int32_t> StateTiers::FreeSlot(std::span<const SessionId> keep) {
  absl::StatusOr<int32_t> slot = backend_.AcquireStateSlot();
  if (slot.ok()) return slot;
  const bool can_spill = options_.host_bytes >= state_bytes_ || !options_.spill_dir.empty();
  Entry* victim = nullptr;
  bool in_use_elsewhere = false;
  for (auto& [id, entry] : entries_) {
    if (entry.tier != StateTier::kDevice || std::find(keep.begin(), keep.end(), id) != keep.end())
      continue;
    if (entry.in_use) {
      in_use_elsewhere = true;
      continue;
    }
    if (victim == nullptr || entry.last_used < victim->last_used) victim = &entry;
  }
  if (!can_spill) {
    return absl::ResourceExhaustedError(absl::StrCat(
        slot.status().message(), ", and there is no host or disk tier to move idle states to"));
  }
  if (victim == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(
        slot.status().message(),
        in_use_elsewhere ? " by sessions with running requests" : " by the current call",
        "; retry when a request finishes"));
  }
  victim->host = backend_.AllocateHostState();
  backend_.ReadStateSlot(victim->slot, HostBytes(*victim));
  backend_.ReleaseStateSlot(victim->slot);
  victim->slot = -1;
  victim->tier = StateTier::kHost;
  host_in_use_ += state_bytes_;
  if (absl::Status fit = FitHostBudget(); !fit.ok()) return fit;
  return backend_.AcquireStateSlot();
}

absl::Status StateTiers::FitHostBudget() {
  while (host_in_use_ > options_.host_bytes) {
    Entry* oldest = nullptr;
    SessionId oldest_id = 0;
    for (auto& [id, entry] : entries_) {
      if (entry.tier == StateTier::kHost &&
          (oldest == nullptr || entry.last_used < oldest->last_used)) {
        oldest = &entry;
        oldest_id = id;
      }
    }
    if (oldest == nullptr) break;
    if (absl::Status written = WriteSpill(oldest_id, *oldest); !written.ok()) return written;
  }
  return absl::OkStatus();
}

absl::Status StateTiers::WriteSpill(SessionId id, Entry& entry) {
  std::error_code error;
  std::filesystem::create_directories(options_.spill_dir, error);
  const std::string file = (std::filesystem::path(options_.spill_dir) /
                            absl::StrCat("state-", id, "-", entry.last_used, ".spill"))
                               .string();
  SpillHeader header{};
  std::memcpy(header.magic, kSpillMagic, sizeof kSpillMagic);
  header.bytes = static_cast<uint64_t>(state_bytes_);
  header.crc = Crc32(HostBytes(entry));
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(&header), sizeof header);
  out.write(reinterpret_cast<const char*>(entry.host.get()),
            static_cast<std::streamsize>(state_bytes_));
  out.close();
  if (!out) {
    std::filesystem::remove(file, error);
    return absl::ResourceExhaustedError(absl::StrCat("cannot write spill file ", file));
  }
  host_in_use_ -= state_bytes_;
  entry.host.reset();
  entry.file = file;
  entry.tier = StateTier::kDisk;
  return absl::OkStatus();
}

absl::Status StateTiers::ReadSpill(const std::string& file, std::span<std::byte> to) const {
  std::ifstream in(file, std::ios::binary);
  SpillHeader header{};
  in.read(reinterpret_cast<char*>(&header), sizeof header);
  if (!in || std::memcmp(header.magic, kSpillMagic, sizeof kSpillMagic) != 0) {
    return absl::DataLossError(
        absl::StrCat("spill file ", file, " is missing or not a spill file"));
  }
  if (static_cast<int64_t>(header.bytes) != state_bytes_) {
    return absl::DataLossError(absl::StrCat("spill file ", file, " holds ", header.bytes,
                                            " bytes, a state is ", state_bytes_));
  }
  in.read(reinterpret_cast<char*>(to.data()), static_cast<std::streamsize>(to.size()));
  if (!in || Crc32(to) != header.crc) {
    return absl::DataLossError(absl::StrCat("spill file ", file, " is truncated or corrupt"));
  }
  return absl::OkStatus();
}

}  // namespace sympow
