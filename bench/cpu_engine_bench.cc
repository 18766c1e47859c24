// CPU engine throughput on the bundled-model shape (MODEL.md: hidden 256, 4 layers, 4 heads × 64,
// degree 2) with random weights: prefill tokens/s by prompt length, decode tokens/s by batch size.
// Decode also reports the state traffic it sustains (S and z read and written once per token).
// Ceilings measured in the same run: memory copy bandwidth and OpenBLAS SGEMM FLOP/s.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "model/cpu/cpu_backend.h"
#include "model/engine.h"
#include "model/presets.h"
#include "model/random_model.h"

namespace sympow {
namespace {

// One model on disk and one engine for the whole run.
Engine& SharedEngine() {
  static std::unique_ptr<Engine> engine = [] {
    const std::string dir = (std::filesystem::temp_directory_path() / "sympow_bench_tiny").string();
    if (!WriteRandomModel(dir, PresetConfig("tiny").value(), 1).ok()) std::abort();
    std::unique_ptr<LoadedModel> model = LoadModel(dir).value();
    return Engine::Create(*model, std::make_unique<CpuBackend>(model->config, 512), {}).value();
  }();
  return *engine;
}

std::vector<int32_t> RandomTokens(int64_t count) {
  std::mt19937 rng(9);
  std::uniform_int_distribution<int32_t> token(0, 8191);
  std::vector<int32_t> tokens(count);
  for (int32_t& t : tokens) t = token(rng);
  return tokens;
}

// Useful work per prefilled token: 2 FLOPs per projection weight, and per kv head the state read
// by each query head (2·D·d), the state update (2·D·d) and the chunk's attention form (4·c·d per
// query head, computed over the full chunk).
double PrefillFlopsPerToken(Engine& engine) {
  const ModelConfig& c = engine.config();
  const double D = static_cast<double>(engine.backend().state_layout().expanded_dim);
  const double d = static_cast<double>(c.head_dim);
  const double group = static_cast<double>(c.QueryHeadsPerKvHead());
  const double projections = static_cast<double>(c.hidden_size) *
                             (2.0 * c.num_heads * c.head_dim + 2.0 * c.num_kv_heads * c.head_dim +
                              c.num_kv_heads + 3.0 * c.intermediate_size);
  const double attention =
      c.num_kv_heads * (2.0 * D * d * (group + 1) + group * 4.0 * engine.chunk_size() * d);
  return c.num_layers * (2.0 * projections + attention);
}

void BM_Prefill(benchmark::State& state) {
  Engine& engine = SharedEngine();
  const std::vector<int32_t> prompt = RandomTokens(state.range(0));
  for (auto _ : state) {
    SessionId session = engine.CreateSession().value();
    benchmark::DoNotOptimize(engine.Prefill(session, prompt).value());
    engine.DeleteSession(session).IgnoreError();
  }
  const double tokens = static_cast<double>(state.iterations() * state.range(0));
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["FLOP/s"] =
      benchmark::Counter(tokens * PrefillFlopsPerToken(engine), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Prefill)->Arg(128)->Arg(1024)->Arg(8192)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Decode(benchmark::State& state) {
  Engine& engine = SharedEngine();
  const int64_t batch = state.range(0);
  const std::vector<int32_t> prompt = RandomTokens(64);
  std::vector<DecodeInput> inputs;
  for (int64_t i = 0; i < batch; ++i) {
    SessionId session = engine.CreateSession().value();
    engine.Prefill(session, prompt).value();
    inputs.push_back({session, 42});
  }
  for (auto _ : state) benchmark::DoNotOptimize(engine.Decode(inputs).value());
  const double tokens = static_cast<double>(state.iterations() * batch);
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["state_bytes/s"] = benchmark::Counter(
      tokens * 2.0 * static_cast<double>(engine.backend().state_layout().Bytes()),
      benchmark::Counter::kIsRate, benchmark::Counter::kIs1024);
  for (const DecodeInput& input : inputs) engine.DeleteSession(input.session).IgnoreError();
}
BENCHMARK(BM_Decode)->Arg(1)->Arg(8)->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime();

// Ceiling for decode: bytes/s of a large memcpy (read + write counted, as for the state).
void BM_MemoryCopy(benchmark::State& state) {
  const size_t bytes = size_t{256} << 20;
  std::vector<char> from(bytes, 1), to(bytes, 0);
  for (auto _ : state) {
    std::memcpy(to.data(), from.data(), bytes);
    benchmark::DoNotOptimize(to.data());
  }
  state.counters["bytes/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 2.0 * bytes,
                         benchmark::Counter::kIsRate, benchmark::Counter::kIs1024);
}
BENCHMARK(BM_MemoryCopy)->Unit(benchmark::kMillisecond)->UseRealTime();

// Ceiling for prefill: FLOP/s of a square fp32 GEMM through the same OpenBLAS.
void BM_Sgemm(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 2.0 * n * n * n, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Sgemm)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace sympow

BENCHMARK_MAIN();
