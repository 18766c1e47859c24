// `sympow-cli generate --model DIR`: prefill a prompt and stream sampled tokens, on the local CPU.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "clients/cli/cli_flags.h"
#include "clients/cli/commands.h"
#include "model/backend_factory.h"
#include "model/engine.h"
#include "model/sampler.h"
#include "model/tokenizer/incremental_decoder.h"
#include "model/tokenizer/tokenizer.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(int64_t, max_prompt_tokens, 1 << 20, "longest prompt accepted");
ABSL_FLAG(int64_t, chunk_size, 0, "prefill chunk; 0 takes the model's config");

namespace sympow::cli {
namespace {

// Prompts at least this long report prefill progress.
constexpr int64_t kReportPrefillFrom = 8192;

// The prompt's token ids from --prompt (with the tokenizer) or --prompt_ids.
absl::StatusOr<std::vector<int32_t>> PromptIds(const Tokenizer* tokenizer) {
  const std::string text = absl::GetFlag(FLAGS_prompt);
  const std::string ids = absl::GetFlag(FLAGS_prompt_ids);
  if (text.empty() == ids.empty())
    return absl::InvalidArgumentError("give exactly one of --prompt and --prompt_ids");
  if (!ids.empty()) return ParseIds(ids, "prompt_ids");
  if (tokenizer == nullptr)
    return absl::FailedPreconditionError("--prompt needs the model's tokenizer.json");
  return tokenizer->Encode(text);
}

absl::Status Generate() {
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  if (model_dir.empty()) return absl::InvalidArgumentError("--model is required");
  absl::StatusOr<SamplingParams> sampling = SamplingFromFlags();
  if (!sampling.ok()) return sampling.status();
  SamplingParams& params = *sampling;

  absl::StatusOr<std::unique_ptr<LoadedModel>> model = LoadModel(model_dir);
  if (!model.ok()) return model.status();
  const ModelConfig& config = (*model)->config;
  if (config.eos_token_id && !absl::GetFlag(FLAGS_ignore_eos)) {
    params.stop_tokens.push_back(static_cast<int32_t>(*config.eos_token_id));
  }
  // Token ids work without a tokenizer; text needs one, and a broken one is an error either way.
  std::unique_ptr<Tokenizer> tokenizer;
  if (!absl::GetFlag(FLAGS_prompt).empty() ||
      std::filesystem::exists(model_dir + "/tokenizer.json")) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> loaded =
        LoadTokenizerForModel(model_dir, config.vocab_size);
    if (!loaded.ok()) return loaded.status();
    tokenizer = std::move(*loaded);
  }
  absl::StatusOr<std::vector<int32_t>> prompt = PromptIds(tokenizer.get());
  if (!prompt.ok()) return prompt.status();
  if (prompt->empty()) return absl::InvalidArgumentError("the prompt is empty");
  if (static_cast<int64_t>(prompt->size()) > absl::GetFlag(FLAGS_max_prompt_tokens)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the prompt has ", prompt->size(),
        " tokens, more than --max_prompt_tokens=", absl::GetFlag(FLAGS_max_prompt_tokens)));
  }
  if (absl::Status status = ValidateSamplingParams(params, config.vocab_size); !status.ok())
    return status;
  absl::StatusOr<std::unique_ptr<Backend>> backend =
      CreateBackend(absl::GetFlag(FLAGS_device), config, 1);
  if (!backend.ok()) return backend.status();
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Create(**model, std::move(*backend), {.chunk_size = absl::GetFlag(FLAGS_chunk_size)});
  if (!engine.ok()) return engine.status();
  spdlog::info(
      "loaded {} ({} layers, hidden {}, degree {}); state {} bytes per session, {} threads",
      model_dir, config.num_layers, config.hidden_size, config.degree,
      (*engine)->backend().state_layout().Bytes(), std::thread::hardware_concurrency());

  SessionId session = (*engine)->CreateSession().value();
  const auto start = std::chrono::steady_clock::now();
  auto last_report = start;
  auto report_progress = [&](int64_t done, int64_t total) {
    if (total < kReportPrefillFrom) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_report < std::chrono::seconds(2) && done < total) return;
    last_report = now;
    spdlog::info("prefill {}/{} tokens ({:.0f}%)", done, total, 100.0 * done / total);
  };
  absl::StatusOr<std::vector<float>> logits =
      (*engine)->Prefill(session, *prompt, LogitsFor::kLastToken, report_progress);
  if (!logits.ok()) return logits.status();
  const auto prefilled = std::chrono::steady_clock::now();
  Sampler sampler(params);
  sampler.Observe(*prompt);
  int64_t generated = 0;
  std::optional<IncrementalDecoder> text;
  if (tokenizer) {
    text.emplace(*tokenizer);
    std::printf("%s", absl::GetFlag(FLAGS_prompt).c_str());
  }
  while (generated < absl::GetFlag(FLAGS_max_new_tokens)) {
    const int32_t token = sampler.Sample(*logits);
    sampler.Observe({&token, 1});
    ++generated;
    if (sampler.IsStop(token)) break;
    const std::string piece = text ? text->Push(token) : absl::StrCat(token, " ");
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    const DecodeInput input{session, token};
    logits = (*engine)->Decode({&input, 1});
    if (!logits.ok()) return logits.status();
  }
  if (text) std::printf("%s", text->Finish().c_str());
  std::printf("\n");
  const auto end = std::chrono::steady_clock::now();
  const double prefill_s = std::chrono::duration<double>(prefilled - start).count();
  const double decode_s = std::chrono::duration<double>(end - prefilled).count();
  spdlog::info(
      "prompt {} tokens in {:.3f} s ({:.0f} tokens/s); generated {} tokens at {:.1f} tokens/s",
      prompt->size(), prefill_s, static_cast<double>(prompt->size()) / prefill_s, generated,
      static_cast<double>(generated) / decode_s);
  return absl::OkStatus();
}

}  // namespace

int RunLocalGenerate() {
  absl::Status status = Generate();
  return status.ok() ? 0 : ReportError(status);
}

}  // namespace sympow::cli
