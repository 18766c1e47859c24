// Whole-model throughput on the GPU through the Engine (as the server runs it): prefill tokens/s
// by prompt length and decode tokens/s by batch size (with and without CUDA graphs), for the
// bundled model and a random-weight 124M-class model, plus GPU memory per session. Writes JSON
// (--out); progress through spdlog.
#include <cuda_runtime.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/count_flags.h"
#include "model/backend_factory.h"
#include "model/engine.h"
#include "model/presets.h"
#include "model/random_model.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, out, "engine_bench.json", "where to write the JSON report");
ABSL_FLAG(std::string, bundled_model, "models/sympow-tiny", "the bundled model's directory");
ABSL_FLAG(std::vector<std::string>, models,
          std::vector<std::string>({"sympow-tiny", "124m-random"}),
          "the models measured (e.g. one of them alone under a profiler)");
ABSL_FLAG(std::vector<std::string>, prefill_tokens,
          std::vector<std::string>({"1024", "8192", "65536"}),
          "prompt lengths of the prefill measurements (empty: none)");
ABSL_FLAG(std::vector<std::string>, decode_sessions,
          std::vector<std::string>({"1", "16", "64", "256"}),
          "batch sizes of the decode measurements, at most 256");

namespace sympow {
namespace {

constexpr int64_t kMaxSessions = 256;

double Seconds(const std::function<void()>& run) {
  const auto start = std::chrono::steady_clock::now();
  run();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::vector<int32_t> RandomTokens(int64_t count, int64_t vocab) {
  std::mt19937 rng(9);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> tokens(count);
  for (int32_t& t : tokens) t = token(rng);
  return tokens;
}

int64_t GpuBytesInUse() {
  size_t free_bytes = 0, total_bytes = 0;
  cudaMemGetInfo(&free_bytes, &total_bytes);
  return static_cast<int64_t>(total_bytes - free_bytes);
}

struct DecodeTimes {
  double step_s = 0;              // a step with tokens sampled on the device
  double host_logits_step_s = 0;  // a step with every row's logits copied to the host
};

// Decode steps of `batch` sessions, each after a 64-token prompt.
DecodeTimes TimeDecode(Engine& engine, int64_t batch, int64_t vocab) {
  std::vector<DecodeInput> inputs;
  const std::vector<int32_t> prompt = RandomTokens(64, vocab);
  for (int64_t i = 0; i < batch; ++i) {
    SessionId session = engine.CreateSession().value();
    engine.Prefill(session, prompt).value();
    inputs.push_back({session, 42});
  }
  // As the server decodes: tokens sampled on the device (temperature 0.8, top-p 0.95), only their
  // ids coming back; and, for comparison, every row's logits copied to the host.
  RowSampling sampling;
  sampling.temperature = 0.8f;
  sampling.top_p = 0.95f;
  std::vector<Engine::StepInput> step;
  for (const DecodeInput& input : inputs)
    step.push_back({input.session, {&input.token, 1}, &sampling});
  for (int i = 0; i < 3; ++i) engine.Step(step).value();  // the graph is captured on the 2nd
  // As many steps as a decode buffer holds: each session folds its buffers once in each loop.
  const int kSteps = static_cast<int>(engine.config().decode_buffer_tokens);
  DecodeTimes times;
  times.step_s = Seconds([&] {
                   for (int i = 0; i < kSteps; ++i) engine.Step(step).value();
                 }) /
                 kSteps;
  times.host_logits_step_s = Seconds([&] {
                               for (int i = 0; i < kSteps; ++i) engine.Decode(inputs).value();
                             }) /
                             kSteps;
  for (const DecodeInput& input : inputs) engine.DeleteSession(input.session).IgnoreError();
  return times;
}

nlohmann::json BenchModel(const std::string& name, const std::string& dir,
                          const std::vector<int64_t>& prefill_tokens,
                          const std::vector<int64_t>& batches) {
  std::unique_ptr<LoadedModel> model = LoadModel(dir).value();
  const int64_t before = GpuBytesInUse();
  std::unique_ptr<Engine> engine =
      Engine::Create(*model, CreateBackend("cuda", model->config, kMaxSessions).value(), {})
          .value();
  const int64_t loaded = GpuBytesInUse();
  const int64_t vocab = model->config.vocab_size;
  const int64_t state_bytes = engine->backend().state_layout().Bytes();
  nlohmann::json report = {{"model", name},
                           {"state_bytes_per_session", state_bytes},
                           {"gpu_bytes_weights_and_slots", loaded - before},
                           {"prefill", nlohmann::json::array()},
                           {"decode", nlohmann::json::array()}};
  for (int64_t length : prefill_tokens) {
    const std::vector<int32_t> prompt = RandomTokens(length, vocab);
    SessionId warm = engine->CreateSession().value();
    engine->Prefill(warm, std::span(prompt).first(std::min<int64_t>(length, 2048))).value();
    engine->DeleteSession(warm).IgnoreError();
    SessionId session = engine->CreateSession().value();
    const double s = Seconds([&] { engine->Prefill(session, prompt).value(); });
    engine->DeleteSession(session).IgnoreError();
    spdlog::info("{} prefill {} tokens: {:.0f} tokens/s", name, length, length / s);
    report["prefill"].push_back({{"tokens", length}, {"tokens_per_s", length / s}});
  }
  std::vector<DecodeTimes> graphs;
  for (int64_t batch : batches) graphs.push_back(TimeDecode(*engine, batch, vocab));
  report["gpu_bytes_peak"] = GpuBytesInUse() - before;
  report["gpu_bytes_per_session"] =
      static_cast<double>(report["gpu_bytes_peak"].get<int64_t>()) / kMaxSessions;
  // The same model without CUDA graphs, for their effect on decode.
  engine.reset();
  std::unique_ptr<Engine> eager =
      Engine::Create(*model, CreateBackend("cuda", model->config, kMaxSessions).value(),
                     {.record_decode_steps = false})
          .value();
  for (size_t i = 0; i < batches.size(); ++i) {
    const DecodeTimes without = TimeDecode(*eager, batches[i], vocab);
    const double tokens_per_s = batches[i] / graphs[i].step_s;
    spdlog::info(
        "{} decode batch {}: {:.0f} tokens/s ({:.0f} us/step; {:.0f} us without CUDA graphs; "
        "{:.0f} us with logits to the host)",
        name, batches[i], tokens_per_s, graphs[i].step_s * 1e6, without.step_s * 1e6,
        graphs[i].host_logits_step_s * 1e6);
    report["decode"].push_back({{"sessions", batches[i]},
                                {"tokens_per_s", tokens_per_s},
                                {"us_per_step", graphs[i].step_s * 1e6},
                                {"us_per_step_without_graphs", without.step_s * 1e6},
                                {"us_per_step_host_logits", graphs[i].host_logits_step_s * 1e6}});
  }
  return report;
}

int Run() {
  const std::optional<std::vector<int64_t>> prefill_tokens =
      ParseCounts(absl::GetFlag(FLAGS_prefill_tokens), "prefill_tokens", int64_t{1} << 24);
  const std::optional<std::vector<int64_t>> batches =
      ParseCounts(absl::GetFlag(FLAGS_decode_sessions), "decode_sessions", kMaxSessions);
  if (!prefill_tokens || !batches) return 2;
  const std::vector<std::string> models = absl::GetFlag(FLAGS_models);
  for (const std::string& model : models) {
    if (model != "sympow-tiny" && model != "124m-random") {
      spdlog::error("--models: '{}' is neither sympow-tiny nor 124m-random", model);
      return 2;
    }
  }
  nlohmann::json report;
  const std::string random_dir =
      (std::filesystem::temp_directory_path() / "sympow_bench_124m").string();
  if (absl::Status written =
          WriteRandomModel(random_dir, PresetConfig("124m").value(), 1, DType::kBF16);
      !written.ok()) {
    spdlog::critical("{}", std::string(written.message()));
    return 1;
  }
  for (const std::string& model : models) {
    const std::string dir =
        model == "sympow-tiny" ? absl::GetFlag(FLAGS_bundled_model) : random_dir;
    report["models"].push_back(BenchModel(model, dir, *prefill_tokens, *batches));
  }
  std::ofstream(absl::GetFlag(FLAGS_out)) << report.dump(2) << "\n";
  spdlog::info("wrote {}", absl::GetFlag(FLAGS_out));
  return 0;
}

}  // namespace
}  // namespace sympow

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return sympow::Run();
}
