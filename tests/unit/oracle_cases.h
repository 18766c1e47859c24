// Test support: the Python oracle's cases (models, tokens and float64 logits) and error measures.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/engine.h"

namespace sympow::testing {

struct OracleCase {
  std::string name;
  std::string dir;
  std::vector<int32_t> tokens;
  int64_t prompt_length = 0;
  int64_t vocab_size = 0;
  std::vector<double> logits;  // [tokens × vocab]

  std::span<const double> LogitsAt(int64_t first_row, int64_t rows) const {
    return {logits.data() + first_row * vocab_size, static_cast<size_t>(rows * vocab_size)};
  }
};

// Reads $SYMPOW_ORACLE_DIR/cases.json (written by tests/reference/make_models.py).
std::vector<OracleCase> LoadOracleCases();

// max |actual − expected| / max |expected|: error relative to the logits' scale.
double MaxRelativeError(std::span<const float> actual, std::span<const double> expected);
double MaxRelativeError(std::span<const float> actual, std::span<const float> expected);

// An engine on the CPU backend for the model in `dir`.
std::unique_ptr<Engine> MakeCpuEngine(const std::string& dir, EngineOptions options = {},
                                      int64_t max_sessions = 64);
// An engine on the backend CreateBackend makes for `device` ("cpu", "cuda", "auto").
std::unique_ptr<Engine> MakeEngine(const std::string& dir, const std::string& device,
                                   EngineOptions options = {}, int64_t max_sessions = 64);

}  // namespace sympow::testing
