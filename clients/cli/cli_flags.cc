#include "clients/cli/cli_flags.h"

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

ABSL_FLAG(std::string, model, "",
          "model directory: generate runs it locally instead of asking --server");
ABSL_FLAG(std::string, device, "auto",
          "local runs (generate --model, perplexity): cpu, cuda, or auto (cuda when present)");
ABSL_FLAG(std::string, file, "",
          "text file: scored (perplexity) or appended to a session (append)");
ABSL_FLAG(std::string, state_dtype, "",
          "state storage, float32 or bfloat16: for random-model, and to override a model's for "
          "perplexity (empty: the model's own)");
ABSL_FLAG(std::string, server, "localhost:50051", "sympow-server address, host:port");
ABSL_FLAG(std::string, session, "", "session id to continue (chat, generate)");
ABSL_FLAG(std::string, prompt, "", "prompt text, encoded with the model's tokenizer.json");
ABSL_FLAG(std::string, prompt_ids, "", "prompt as comma-separated token ids (instead of --prompt)");
ABSL_FLAG(bool, ignore_eos, false, "keep generating past the model's eos_token_id");
ABSL_FLAG(int64_t, max_new_tokens, 32, "tokens to generate at most");
ABSL_FLAG(double, temperature, 0.8, "sampling temperature; 0 is greedy");
ABSL_FLAG(int32_t, top_k, 0, "keep the k most likely tokens; 0 is off");
ABSL_FLAG(double, top_p, 1.0, "keep the smallest set with this much probability; 1 is off");
ABSL_FLAG(double, min_p, 0.0, "drop tokens below min_p times the best probability; 0 is off");
ABSL_FLAG(double, repetition_penalty, 1.0, "penalise tokens already seen; 1 is off");
ABSL_FLAG(uint64_t, seed, 0, "sampling seed: the same seed gives the same tokens");
ABSL_FLAG(std::string, stop_ids, "", "comma-separated token ids that end generation");

namespace sympow::cli {

absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& text, absl::string_view flag) {
  std::vector<int32_t> ids;
  for (absl::string_view piece : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t id;
    if (!absl::SimpleAtoi(piece, &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", piece, "' is not a token id"));
    }
    ids.push_back(id);
  }
  return ids;
}

absl::StatusOr<SamplingParams> SamplingFromFlags() {
  SamplingParams params;
  params.temperature = static_cast<float>(absl::GetFlag(FLAGS_temperature));
  params.top_k = absl::GetFlag(FLAGS_top_k);
  params.top_p = static_cast<float>(absl::GetFlag(FLAGS_top_p));
  params.min_p = static_cast<float>(absl::GetFlag(FLAGS_min_p));
  params.repetition_penalty = static_cast<float>(absl::GetFlag(FLAGS_repetition_penalty));
  params.seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<std::vector<int32_t>> stops = ParseIds(absl::GetFlag(FLAGS_stop_ids), "stop_ids");
  if (!stops.ok()) return stops.status();
  params.stop_tokens = *stops;
  return params;
}

int ReportError(const absl::Status& status) {
  std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
  return 1;
}

absl::Status OverrideStateDType(ModelConfig& config) {
  const std::string name = absl::GetFlag(FLAGS_state_dtype);
  if (name.empty()) return absl::OkStatus();
  absl::StatusOr<StateDType> dtype = ParseStateDType(name);
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--state_dtype ", dtype.status().message()));
  }
  config.state_dtype = *dtype;
  return absl::OkStatus();
}

}  // namespace sympow::cli
