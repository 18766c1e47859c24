// Element types of tensors in model files and backend memory, and conversions to fp32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include "absl/strings/string_view.h"

namespace sympow {

enum class DType : uint8_t { kF32, kBF16, kF16 };

size_t DTypeSize(DType dtype);
absl::string_view DTypeName(DType dtype);
// Parses a safetensors dtype string ("F32", "BF16", "F16"); nullopt for anything else.
std::optional<DType> ParseSafetensorsDType(absl::string_view name);

inline float Bf16ToFloat(uint16_t bits) {
  uint32_t widened = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &widened, sizeof value);
  return value;
}

// Round to nearest even, the rounding torch and CUDA use; NaN stays NaN.
inline uint16_t FloatToBf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float F16ToFloat(uint16_t bits);

// Converts `count` elements stored as `dtype` at `src` (any alignment) into fp32.
void ConvertToFloat(DType dtype, const std::byte* src, size_t count, float* dst);

}  // namespace sympow
