#include "model/cuda/device_batch_inputs.h"

#include <algorithm>
#include <cstring>

#include "model/cuda/cuda_check.h"

namespace sympow {

DeviceBatchInputs::DeviceBatchInputs(int64_t* allocation_epoch) : device_(allocation_epoch) {
  CudaCheck(cudaEventCreateWithFlags(&copied_, cudaEventDisableTiming), "cudaEventCreate");
}

DeviceBatchInputs::~DeviceBatchInputs() {
  cudaEventSynchronize(copied_);
  cudaEventDestroy(copied_);
  cudaFreeHost(pinned_);
}

void DeviceBatchInputs::Upload(const BatchInputs& inputs,
                               std::span<const kernels::DecodeRow> decode_rows,
                               cudaStream_t stream) {
  segments_.assign(inputs.segments.begin(), inputs.segments.end());
  // Each part starts 16-byte aligned (the decode rows are 16-byte structs).
  int64_t end = 0;
  auto place = [&](size_t bytes) {
    const Part part{(end + 15) / 16 * 16, static_cast<int64_t>(bytes)};
    end = part.offset + part.bytes;
    return part;
  };
  tokens_ = place(inputs.tokens.size_bytes());
  positions_ = place(inputs.positions.size_bytes());
  decode_rows_ = place(decode_rows.size_bytes());
  logit_rows_ = place(inputs.logit_rows.size_bytes());
  CudaCheck(cudaEventSynchronize(copied_), "wait for the last batch's inputs to be copied");
  if (end > pinned_bytes_) {
    CudaCheck(cudaFreeHost(pinned_), "cudaFreeHost");
    pinned_ = nullptr;
    CudaCheck(cudaMallocHost(&pinned_, end), "cudaMallocHost");
    pinned_bytes_ = end;
  }
  auto put = [&](Part part, const void* data) {
    if (part.bytes > 0) std::memcpy(pinned_ + part.offset, data, part.bytes);
  };
  put(tokens_, inputs.tokens.data());
  put(positions_, inputs.positions.data());
  put(decode_rows_, decode_rows.data());
  put(logit_rows_, inputs.logit_rows.data());
  device_data_ = device_.Reserve(end);
  if (end > 0) {
    CudaCheck(cudaMemcpyAsync(device_data_, pinned_, end, cudaMemcpyHostToDevice, stream),
              "copy batch inputs");
  }
  CudaCheck(cudaEventRecord(copied_, stream), "cudaEventRecord");
}

const std::byte* DeviceBatchInputs::Find(std::span<const std::byte> host, Part part) const {
  if (host.empty() || static_cast<int64_t>(host.size()) != part.bytes ||
      std::memcmp(host.data(), pinned_ + part.offset, part.bytes) != 0) {
    return nullptr;
  }
  return device_data_ + part.offset;
}

const int32_t* DeviceBatchInputs::Tokens(std::span<const int32_t> tokens) const {
  return reinterpret_cast<const int32_t*>(Find(std::as_bytes(tokens), tokens_));
}

const int64_t* DeviceBatchInputs::Positions(std::span<const int64_t> positions) const {
  return reinterpret_cast<const int64_t*>(Find(std::as_bytes(positions), positions_));
}

const int64_t* DeviceBatchInputs::LogitRows(std::span<const int64_t> rows) const {
  return reinterpret_cast<const int64_t*>(Find(std::as_bytes(rows), logit_rows_));
}

const kernels::DecodeRow* DeviceBatchInputs::DecodeRows(std::span<const AttentionSegment> segments,
                                                        int64_t* count) const {
  const bool same = segments.size() == segments_.size() &&
                    std::equal(segments.begin(), segments.end(), segments_.begin(),
                               [](const AttentionSegment& a, const AttentionSegment& b) {
                                 return a.first_row == b.first_row && a.num_rows == b.num_rows &&
                                        a.state_slot == b.state_slot;
                               });
  if (!same || decode_rows_.bytes == 0) return nullptr;
  *count = decode_rows_.bytes / static_cast<int64_t>(sizeof(kernels::DecodeRow));
  return reinterpret_cast<const kernels::DecodeRow*>(device_data_ + decode_rows_.offset);
}

}  // namespace sympow
