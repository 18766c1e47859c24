#include "model/cpu/cpu_state_slots.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sympow {

CpuStateSlots::CpuStateSlots(int64_t slot_bytes, int64_t max_slots)
    : slot_bytes_(slot_bytes), max_slots_(max_slots) {}

absl::StatusOr<int32_t> CpuStateSlots::Acquire() {
  int32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else if (static_cast<int64_t>(slots_.size()) < max_slots_) {
    slot = static_cast<int32_t>(slots_.size());
    slots_.push_back(std::make_unique<std::byte[]>(slot_bytes_));
  } else {
    return absl::ResourceExhaustedError(
        absl::StrCat("all ", max_slots_, " state slots (", slot_bytes_, " bytes each) are in use"));
  }
  std::fill_n(slots_[slot].get(), slot_bytes_, std::byte{0});
  return slot;
}

void CpuStateSlots::Release(int32_t slot) { free_.push_back(slot); }

}  // namespace sympow
