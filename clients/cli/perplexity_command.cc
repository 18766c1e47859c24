// `sympow-cli perplexity`: the model's next-token loss over a text file, read as one stream
// (the state carries the whole file, as llama.cpp's perplexity tool carries a context window).
// --decode feeds it one token at a time, the serving path: a bf16 state (--state_dtype) is then
// rounded after every token, which is the accuracy cost to measure.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "clients/cli/cli_flags.h"
#include "clients/cli/commands.h"
#include "model/backend_factory.h"
#include "model/engine.h"
#include "model/loss.h"
#include "model/tokenizer/tokenizer.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(int64_t, max_tokens, 0, "score at most this many tokens (0: the whole file)");
ABSL_FLAG(bool, decode, false, "score token by token through decode steps instead of prefill");

namespace sympow::cli {
namespace {

constexpr int64_t kPiece = 4096;  // tokens scored per prefill call

absl::Status Perplexity() {
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  std::ifstream in(absl::GetFlag(FLAGS_file), std::ios::binary);
  if (!in)
    return absl::NotFoundError(
        absl::StrCat("--file: cannot open '", absl::GetFlag(FLAGS_file), "'"));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<std::unique_ptr<LoadedModel>> model = LoadModel(model_dir);
  if (!model.ok()) return model.status();
  if (absl::Status overridden = OverrideStateDType((*model)->config); !overridden.ok()) {
    return overridden;
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadTokenizerForModel(model_dir, (*model)->config.vocab_size);
  if (!tokenizer.ok()) return tokenizer.status();
  std::vector<int32_t> ids = (*tokenizer)->Encode(text.str());
  if (absl::GetFlag(FLAGS_max_tokens) > 0 &&
      static_cast<int64_t>(ids.size()) > absl::GetFlag(FLAGS_max_tokens)) {
    ids.resize(absl::GetFlag(FLAGS_max_tokens));
  }
  if (ids.size() < 2) return absl::InvalidArgumentError("--file: fewer than 2 tokens to score");
  absl::StatusOr<std::unique_ptr<Backend>> backend =
      CreateBackend(absl::GetFlag(FLAGS_device), (*model)->config, 1);
  if (!backend.ok()) return backend.status();
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(**model, std::move(*backend), {});
  if (!engine.ok()) return engine.status();
  const int64_t vocab = (*model)->config.vocab_size;
  SessionId session = (*engine)->CreateSession().value();
  const auto start = std::chrono::steady_clock::now();
  double total_nll = 0.0;
  const int64_t inputs = static_cast<int64_t>(ids.size()) - 1;  // the last token is only a target
  const bool decode = absl::GetFlag(FLAGS_decode);
  for (int64_t first = 0; first < inputs; first += kPiece) {
    const int64_t count = std::min(kPiece, inputs - first);
    for (int64_t i = 0; i < count; i += decode ? 1 : count) {
      const std::span<const int32_t> part = std::span(ids).subspan(first + i, decode ? 1 : count);
      absl::StatusOr<std::vector<float>> logits =
          decode ? (*engine)->Decode({{DecodeInput{session, part[0]}}})
                 : (*engine)->Prefill(session, part, LogitsFor::kEveryToken);
      if (!logits.ok()) return logits.status();
      for (size_t j = 0; j < part.size(); ++j) {
        total_nll += NegativeLogLikelihood(std::span(*logits).subspan(j * vocab, vocab),
                                           ids[first + i + j + 1]);
      }
    }
    spdlog::info("scored {}/{} tokens: loss {:.4f}", first + count, inputs,
                 total_nll / (first + count));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double loss = total_nll / static_cast<double>(inputs);
  std::printf("tokens %lld  loss %.4f nats/token  perplexity %.2f  (%.0f tokens/s, %s, %s state)\n",
              static_cast<long long>(inputs), loss, std::exp(loss), inputs / seconds,
              decode ? "decode" : "prefill",
              std::string(StateDTypeName((*model)->config.state_dtype)).c_str());
  return absl::OkStatus();
}

}  // namespace

int RunPerplexity() {
  absl::Status status = Perplexity();
  return status.ok() ? 0 : ReportError(status);
}

}  // namespace sympow::cli
