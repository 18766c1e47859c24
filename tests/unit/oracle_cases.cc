#include "tests/unit/oracle_cases.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "model/backend_factory.h"
#include "nlohmann/json.hpp"

namespace sympow::testing {

std::vector<OracleCase> LoadOracleCases() {
  const char* dir = std::getenv("SYMPOW_ORACLE_DIR");
  if (dir == nullptr) {
    ADD_FAILURE() << "SYMPOW_ORACLE_DIR is not set: run through ctest";
    return {};
  }
  std::ifstream in(std::string(dir) + "/cases.json");
  nlohmann::json index = nlohmann::json::parse(in);
  std::vector<OracleCase> cases;
  for (const auto& entry : index["cases"]) {
    OracleCase c;
    c.name = entry["name"];
    // Paths relative to the index, so the data can move (to the GPU machine, for one).
    c.dir = (std::filesystem::path(dir) / c.name).string();
    c.tokens = entry["tokens"].get<std::vector<int32_t>>();
    c.prompt_length = entry["prompt_length"];
    c.vocab_size = entry["vocab_size"];
    c.logits.resize(c.tokens.size() * c.vocab_size);
    const std::filesystem::path logits_file = entry["logits_file"].get<std::string>();
    std::ifstream logits(std::filesystem::path(c.dir) / logits_file.filename(), std::ios::binary);
    logits.read(reinterpret_cast<char*>(c.logits.data()),
                static_cast<std::streamsize>(c.logits.size() * sizeof(double)));
    EXPECT_TRUE(logits.good()) << "short logits file for " << c.name;
    cases.push_back(std::move(c));
  }
  return cases;
}

template <typename Expected>
double RelativeError(std::span<const float> actual, std::span<const Expected> expected) {
  EXPECT_EQ(actual.size(), expected.size());
  double max_error = 0.0;
  double max_magnitude = 0.0;
  for (size_t i = 0; i < std::min(actual.size(), expected.size()); ++i) {
    const double error =
        std::abs(static_cast<double>(actual[i]) - static_cast<double>(expected[i]));
    max_error = std::isnan(error) ? INFINITY : std::max(max_error, error);
    max_magnitude = std::max(max_magnitude, std::abs(static_cast<double>(expected[i])));
  }
  return max_error / std::max(max_magnitude, 1e-30);
}

double MaxRelativeError(std::span<const float> actual, std::span<const double> expected) {
  return RelativeError(actual, expected);
}

double MaxRelativeError(std::span<const float> actual, std::span<const float> expected) {
  return RelativeError(actual, expected);
}

std::unique_ptr<Engine> MakeCpuEngine(const std::string& dir, EngineOptions options,
                                      int64_t max_sessions) {
  return MakeEngine(dir, "cpu", options, max_sessions);
}

std::unique_ptr<Engine> MakeEngine(const std::string& dir, const std::string& device,
                                   EngineOptions options, int64_t max_sessions) {
  absl::StatusOr<std::unique_ptr<LoadedModel>> model = LoadModel(dir);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<Backend>> backend =
      CreateBackend(device, (*model)->config, max_sessions);
  EXPECT_TRUE(backend.ok()) << backend.status();
  if (!backend.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Create(**model, std::move(*backend), options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? std::move(*engine) : nullptr;
}

}  // namespace sympow::testing
