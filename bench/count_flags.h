// Reads the benchmarks' list flags of counts (--decode_sessions=1,16,64 and the like).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "spdlog/spdlog.h"

namespace sympow {

// The counts in `values`, each from 1 to `most`; nullopt, with an error naming --`flag`, otherwise.
inline std::optional<std::vector<int64_t>> ParseCounts(const std::vector<std::string>& values,
                                                       std::string_view flag, int64_t most) {
  std::vector<int64_t> counts;
  for (const std::string& value : values) {
    int64_t count = 0;
    if (!absl::SimpleAtoi(value, &count) || count < 1 || count > most) {
      spdlog::error("--{}: '{}' is not a count from 1 to {}", flag, value, most);
      return std::nullopt;
    }
    counts.push_back(count);
  }
  return counts;
}

}  // namespace sympow
