// A forward pass's per-row inputs (token ids, positions, decode rows, logit rows) copied to the
// device in one transfer through pinned memory, to addresses that stay put while the inputs fit:
// a recorded forward pass (a CUDA graph) finds the next batch's inputs where it read the last's.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/power_attention.h"
#include "model/backend.h"
#include "model/cuda/device_array.h"

namespace sympow {

class DeviceBatchInputs {
 public:
  // Device growth counts in `allocation_epoch`, as DeviceArray's does.
  explicit DeviceBatchInputs(int64_t* allocation_epoch);
  DeviceBatchInputs(const DeviceBatchInputs&) = delete;
  DeviceBatchInputs& operator=(const DeviceBatchInputs&) = delete;
  ~DeviceBatchInputs();

  // Queues the copy of `inputs` and of `decode_rows` (one per single-row segment, in order) on
  // `stream`. Waits first for the previous copy to have left the pinned buffer.
  void Upload(const BatchInputs& inputs, std::span<const kernels::DecodeRow> decode_rows,
              cudaStream_t stream);

  // The device copy of these host inputs, or null when they differ from the uploaded ones.
  const int32_t* Tokens(std::span<const int32_t> tokens) const;
  const int64_t* Positions(std::span<const int64_t> positions) const;
  const int64_t* LogitRows(std::span<const int64_t> rows) const;
  // The device decode rows of these segments (their count in `count`), or null when the
  // segments differ from the uploaded ones.
  const kernels::DecodeRow* DecodeRows(std::span<const AttentionSegment> segments,
                                       int64_t* count) const;

 private:
  // Where one part of the inputs sits in the pinned and device buffers.
  struct Part {
    int64_t offset = 0;
    int64_t bytes = 0;
  };
  // The device copy of `part`, if `host` holds the same bytes.
  const std::byte* Find(std::span<const std::byte> host, Part part) const;

  std::vector<AttentionSegment> segments_;
  Part tokens_, positions_, decode_rows_, logit_rows_;
  std::byte* pinned_ = nullptr;
  int64_t pinned_bytes_ = 0;
  DeviceArray<std::byte> device_;
  std::byte* device_data_ = nullptr;
  cudaEvent_t copied_ = nullptr;
};

}  // namespace sympow
