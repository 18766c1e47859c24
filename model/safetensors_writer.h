// Writes .safetensors files (used by tests, benchmarks and tools that make models).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "model/dtype.h"

namespace sympow {

struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;  // exactly product(shape) × DTypeSize(dtype)
};

// Encodes fp32 values as `dtype` (BF16 and F16 round to nearest even).
TensorToWrite MakeTensor(std::string name, DType dtype, std::vector<int64_t> shape,
                         const std::vector<float>& values);

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace sympow
