// A grow-only device buffer for per-call data (token ids, row lists, scratch). Growing frees the
// old memory, which cudaFree orders after the work already queued on the device, and counts in
// `allocation_epoch` (when given): recordings of work that used the old memory are then stale.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <span>

#include "model/cuda/cuda_check.h"

namespace sympow {

template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(int64_t* allocation_epoch = nullptr) : allocation_epoch_(allocation_epoch) {}
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { cudaFree(data_); }

  // Room for at least n elements; the contents are undefined after growing.
  T* Reserve(int64_t n) {
    if (n > capacity_) {
      CudaCheck(cudaFree(data_), "cudaFree");
      data_ = nullptr;
      CudaCheck(cudaMalloc(&data_, static_cast<size_t>(n) * sizeof(T)), "cudaMalloc");
      capacity_ = n;
      if (allocation_epoch_ != nullptr) ++*allocation_epoch_;
    }
    return data_;
  }

  // Like Reserve, but memory allocated here is zeroed on `stream`: for buffers whose users leave
  // them zero again (the decode scratch).
  T* ReserveZeroed(int64_t n, cudaStream_t stream) {
    const int64_t before = capacity_;
    T* data = Reserve(n);
    if (capacity_ != before) {
      CudaCheck(cudaMemsetAsync(data, 0, static_cast<size_t>(capacity_) * sizeof(T), stream),
                "cudaMemsetAsync");
    }
    return data;
  }

  // Copies `values` in, ordered on `stream` after the work already queued there.
  T* Upload(std::span<const T> values, cudaStream_t stream) {
    T* device = Reserve(static_cast<int64_t>(values.size()));
    if (!values.empty()) {
      CudaCheck(cudaMemcpyAsync(device, values.data(), values.size_bytes(), cudaMemcpyHostToDevice,
                                stream),
                "cudaMemcpyAsync to device");
    }
    return device;
  }

 private:
  int64_t* allocation_epoch_;
  T* data_ = nullptr;
  int64_t capacity_ = 0;
};

}  // namespace sympow
