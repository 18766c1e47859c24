// Flags that several sympow-cli commands share, and what they turn into.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/config.h"
#include "model/sampler.h"

ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, device);
ABSL_DECLARE_FLAG(std::string, file);
ABSL_DECLARE_FLAG(std::string, server);
ABSL_DECLARE_FLAG(std::string, session);
ABSL_DECLARE_FLAG(std::string, prompt);
ABSL_DECLARE_FLAG(std::string, prompt_ids);
ABSL_DECLARE_FLAG(bool, ignore_eos);
ABSL_DECLARE_FLAG(int64_t, max_new_tokens);
ABSL_DECLARE_FLAG(std::string, state_dtype);

namespace sympow::cli {

// "1,2,3" → ids; an error naming `flag` for anything else.
absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& text, absl::string_view flag);

// --temperature, --top_k, --top_p, --min_p, --repetition_penalty, --seed and --stop_ids.
absl::StatusOr<SamplingParams> SamplingFromFlags();

// --state_dtype, when given, replaces the config's state storage; an error names the flag.
absl::Status OverrideStateDType(ModelConfig& config);

// Prints `status` as the one-line error and returns the exit code for it.
int ReportError(const absl::Status& status);

}  // namespace sympow::cli
