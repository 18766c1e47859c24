// Session state slots in host memory for the CPU backend; allocated on first use, reused after.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace sympow {

class CpuStateSlots {
 public:
  CpuStateSlots(int64_t slot_bytes, int64_t max_slots);

  absl::StatusOr<int32_t> Acquire();  // zeroed
  void Release(int32_t slot);
  std::byte* Data(int32_t slot) { return slots_[slot].get(); }
  int64_t slot_bytes() const { return slot_bytes_; }

 private:
  int64_t slot_bytes_;
  int64_t max_slots_;
  std::vector<std::unique_ptr<std::byte[]>> slots_;
  std::vector<int32_t> free_;
};

}  // namespace sympow
