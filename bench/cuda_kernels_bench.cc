// GPU kernel benchmark: the hardware ceilings (device copy bandwidth, cuBLAS BF16 GEMM) and
// sympow's power-attention decode and prefill and token sampling, all in one run on one GPU.
// Writes a JSON report (--out) that bench/peers/report.py merges with the peers' figures.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <curand.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/count_flags.h"
#include "bench/wgmma_ceiling.h"
#include "kernels/elementwise.h"
#include "kernels/power_attention.h"
#include "kernels/power_prefill_mma.h"
#include "kernels/sampling.h"
#include "model/config.h"
#include "model/cuda/cuda_check.h"
#include "model/cuda/device_array.h"
#include "model/expansion.h"
#include "model/presets.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, out, "kernels_bench.json", "where to write the JSON report");
ABSL_FLAG(int64_t, max_prefill_context, 1 << 20, "longest prefill context measured");
ABSL_FLAG(int64_t, min_prefill_context, 1024, "shortest prefill context measured");
ABSL_FLAG(bool, decode, true, "measure decode (false: prefill only, e.g. under a profiler)");
ABSL_FLAG(bool, prefill, true, "measure prefill (false: decode only, e.g. under a profiler)");
ABSL_FLAG(bool, decode_fold_in_step, true,
          "fold decode buffers in the step that fills them where the decode kernels can "
          "(false: a separate fold after the step everywhere, as before they could)");
ABSL_FLAG(bool, decode_parts, false,
          "also time a decode step's stream launches alone and its finish launches alone (CUDA "
          "graphs of plain steps), to place the step's time outside the stream");
ABSL_FLAG(bool, sampling, true, "measure token sampling (at the decode session counts)");
ABSL_FLAG(bool, projections, true,
          "measure the projections that read one input as separate GEMMs and stacked");
ABSL_FLAG(std::vector<std::string>, decode_sessions,
          std::vector<std::string>({"1", "16", "64", "256"}),
          "session counts decode is measured at, ascending");
ABSL_FLAG(std::vector<std::string>, decode_shapes, std::vector<std::string>({"124m", "14b"}),
          "shapes decode is measured at (124m, 14b), e.g. one alone under a profiler");
ABSL_FLAG(std::vector<std::string>, decode_state_dtypes,
          std::vector<std::string>({"float32", "bfloat16"}),
          "state dtypes decode is measured with");

namespace sympow {
namespace {

struct AttentionShape {
  std::string name;
  int layers, heads, kv_heads, head_dim, degree;
};

const AttentionShape k124m{"124m", 12, 12, 12, 64, 2};
const AttentionShape k14b{"14b", 40, 40, 8, 128, 2};

// Milliseconds of one call of `run`, between events on the stream.
double ElapsedMs(cudaStream_t stream, const std::function<void()>& run) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start, stream);
  run();
  cudaEventRecord(stop, stream);
  CudaCheck(cudaEventSynchronize(stop), "timing");
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms;
}

double Median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

// Median milliseconds of `run` over `repeats` timed calls after two warm-up calls.
double TimeMs(cudaStream_t stream, int repeats, const std::function<void()>& run) {
  for (int i = 0; i < 2; ++i) run();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) times.push_back(ElapsedMs(stream, run));
  return Median(times);
}

// Device-to-device copy of 2 GiB; bytes moved = read + written.
double CopyTerabytesPerSecond(cudaStream_t stream) {
  const size_t bytes = size_t{2} << 30;
  DeviceArray<std::byte> from, to;
  from.Reserve(bytes);
  to.Reserve(bytes);
  const double ms = TimeMs(stream, 10, [&] {
    cudaMemcpyAsync(to.Reserve(bytes), from.Reserve(bytes), bytes, cudaMemcpyDeviceToDevice,
                    stream);
  });
  return 2.0 * bytes / (ms * 1e-3) / 1e12;
}

double GemmTeraflops(cudaStream_t stream, cublasHandle_t cublas) {
  const int n = 8192;
  DeviceArray<uint16_t> a, b;
  DeviceArray<float> c;
  a.Reserve(int64_t{n} * n);
  b.Reserve(int64_t{n} * n);
  c.Reserve(int64_t{n} * n);
  cudaMemsetAsync(a.Reserve(int64_t{n} * n), 0, size_t{2} * n * n, stream);
  cudaMemsetAsync(b.Reserve(int64_t{n} * n), 0, size_t{2} * n * n, stream);
  const float alpha = 1.0f, beta = 0.0f;
  const double ms = TimeMs(stream, 10, [&] {
    CublasCheck(cublasGemmEx(cublas, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a.Reserve(0),
                             CUDA_R_16BF, n, b.Reserve(0), CUDA_R_16BF, n, &beta, c.Reserve(0),
                             CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                "gemm");
  });
  return 2.0 * n * n * n / (ms * 1e-3) / 1e12;
}

// TFLOP/s of the prefill passes' wgmma pattern alone (bench/wgmma_ceiling.h) at `columns`.
double WgmmaChainTeraflops(int columns, cudaStream_t stream) {
  DeviceArray<float> sink;
  const double ms = TimeMs(stream, 5, [&] {
    bench::LaunchWgmmaChains(columns, sink.Reserve(bench::WgmmaChainsSinkFloats()), stream);
    CheckLaunch("WgmmaChains");
  });
  return bench::WgmmaChainsFlops(columns) / (ms * 1e-3) / 1e12;
}

// The device tables of φ for a shape, kept alive with the shape that points at them.
struct DeviceShape {
  kernels::PowerAttentionShape shape;
  DeviceArray<uint8_t> monomials;
  DeviceArray<float> key_weights;
  DeviceArray<int32_t> feature_rows;

  DeviceShape(const AttentionShape& s, cudaStream_t stream) {
    const SymmetricExpansion expansion(s.head_dim, s.degree);
    std::vector<uint8_t> factors;
    std::vector<float> weights;
    for (int64_t m = 0; m < expansion.dim(); ++m) {
      for (int f : expansion.Monomial(m)) factors.push_back(static_cast<uint8_t>(f));
      weights.push_back(expansion.KeyWeight(m));
    }
    shape.num_heads = s.heads;
    shape.num_kv_heads = s.kv_heads;
    shape.head_dim = s.head_dim;
    shape.expanded_dim = static_cast<int>(expansion.dim());
    shape.degree = s.degree;
    shape.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    shape.scale_pow = std::pow(shape.scale, s.degree);
    shape.buffer_tokens = static_cast<int>(ModelConfig{}.decode_buffer_tokens);
    shape.monomials = monomials.Upload(factors, stream);
    shape.key_weights = key_weights.Upload(weights, stream);
    const std::vector<int32_t> rows = kernels::FeatureRows(factors, s.head_dim, s.degree);
    if (!rows.empty()) shape.feature_rows = feature_rows.Upload(rows, stream);
    CudaCheck(cudaStreamSynchronize(stream), "tables");
  }
  int64_t StateElementsPerLayer() const {
    return int64_t{shape.num_kv_heads} * shape.expanded_dim * (shape.head_dim + 1);
  }
};

// Normal random activations, drawn on the device (a 1M-token layer holds billions of them).
void FillRandom(DeviceArray<float>& array, int64_t n, uint64_t seed) {
  curandGenerator_t generator;
  curandCreateGenerator(&generator, CURAND_RNG_PSEUDO_PHILOX4_32_10);
  curandSetPseudoRandomGeneratorSeed(generator, seed);
  if (curandGenerateNormal(generator, array.Reserve(n + n % 2), n + n % 2, 0.0f, 1.0f) !=
      CURAND_STATUS_SUCCESS) {
    spdlog::critical("curandGenerateNormal failed");
    std::abort();
  }
  curandDestroyGenerator(generator);
}

struct Activations {
  DeviceArray<float> q, k, v, log_gate, out;
  kernels::AttentionRows rows;
  Activations(const kernels::PowerAttentionShape& s, int64_t n, cudaStream_t stream) {
    FillRandom(q, n * s.num_heads * s.head_dim, 1);
    FillRandom(k, n * s.num_kv_heads * s.head_dim, 2);
    FillRandom(v, n * s.num_kv_heads * s.head_dim, 3);
    std::vector<float> gates(n * s.num_kv_heads, -0.001f);
    log_gate.Upload(gates, stream);
    out.Reserve(n * s.num_heads * s.head_dim);
    // Unit-normal entries keep s·q·k O(1), as qk-norm does in a model.
    rows = {q.Reserve(0), k.Reserve(0), v.Reserve(0), log_gate.Reserve(0), out.Reserve(0)};
    CudaCheck(cudaStreamSynchronize(stream), "activations");
  }
};

nlohmann::json BenchDecode(const AttentionShape& s, int sessions, bool bf16, double copy_tbps,
                           cudaStream_t stream) {
  DeviceShape device(s, stream);
  const kernels::PowerAttentionShape& shape = device.shape;
  const int64_t element_bytes = bf16 ? 2 : 4;
  const int64_t layer_bytes = device.StateElementsPerLayer() * element_bytes;
  const int64_t layer_buffer_bytes = shape.num_kv_heads * kernels::BufferFloatsPerHead(shape) * 4;
  const int64_t state_bytes = layer_bytes * s.layers;  // S and z
  const int64_t slot_bytes = state_bytes + layer_buffer_bytes * s.layers;
  DeviceArray<std::byte> states;
  std::byte* base = states.Reserve(slot_bytes * sessions);
  cudaMemsetAsync(base, 0, slot_bytes * sessions, stream);
  Activations act(shape, sessions, stream);
  DeviceArray<float> scratch;
  scratch.ReserveZeroed(kernels::DecodeScratchFloats(shape, sessions), stream);
  std::vector<kernels::DecodeRow> rows;
  for (int i = 0; i < sessions; ++i) rows.push_back({i, base + i * slot_bytes});
  DeviceArray<kernels::DecodeRow> device_rows;
  device_rows.Upload(rows, stream);
  // launch(layer, its offsets in a slot) for every layer, in order.
  auto each_layer = [&](const std::function<void(int, kernels::LayerOffsets)>& launch) {
    for (int layer = 0; layer < s.layers; ++layer) {
      launch(layer, {layer * layer_bytes, state_bytes + layer * layer_buffer_bytes});
    }
  };
  auto decode_step = [&](bool folds) {
    each_layer([&](int, kernels::LayerOffsets offsets) {
      kernels::PowerDecode(shape, act.rows, device_rows.Reserve(0), sessions, offsets, bf16,
                           scratch.Reserve(0), stream, nullptr, folds);
    });
  };
  auto step = [&] { decode_step(false); };
  // Decode steps fill the buffers. After each timed window of N − 1 steps they are folded into the
  // states as the CUDA backend does: by the step that fills them where the decode kernels fold
  // (FoldsInDecode), else as CudaBackend::FoldDecodeBuffers does, the buffered tokens gathered
  // into rows and prefilled without queries or outputs, straight into the states.
  const bool in_step =
      absl::GetFlag(FLAGS_decode_fold_in_step) && kernels::FoldsInDecode(shape, bf16);
  const int window = shape.buffer_tokens - 1;
  if (bf16 && !kernels::UsesTensorCorePrefill(shape.head_dim, shape.degree)) {
    spdlog::critical("{}: a bf16 state folds through the tensor-core prefill only", s.name);
    std::abort();
  }
  kernels::PowerAttentionShape fold_shape = shape;
  fold_shape.bf16_states = bf16;
  const int64_t fold_rows = int64_t{sessions} * window;
  std::vector<kernels::BufferedRows> buffered;
  std::vector<kernels::PrefillSegment> segments;  // [layers × sessions]
  for (int i = 0; i < sessions; ++i) buffered.push_back({i * window, rows[i].state, window});
  for (int layer = 0; layer < s.layers; ++layer) {
    for (int i = 0; i < sessions; ++i) {
      segments.push_back({i * window, window,
                          reinterpret_cast<float*>(base + i * slot_bytes + layer * layer_bytes)});
    }
  }
  // Every layer's segments hold the same rows, so one plan serves them all.
  std::vector<kernels::PrefillSegment> first_layer(segments.begin(), segments.begin() + sessions);
  const std::vector<kernels::PrefillChunk> chunks =
      kernels::PlanPrefill(fold_shape, first_layer, false);
  for (size_t i = 0; i < segments.size(); ++i) {
    segments[i].first_chunk = first_layer[i % sessions].first_chunk;
    segments[i].num_chunks = first_layer[i % sessions].num_chunks;
  }
  DeviceArray<kernels::BufferedRows> device_buffered;
  DeviceArray<kernels::PrefillSegment> device_segments;
  DeviceArray<kernels::PrefillChunk> device_chunks;
  device_buffered.Upload(buffered, stream);
  device_segments.Upload(segments, stream);
  device_chunks.Upload(chunks, stream);
  DeviceArray<float> fold_k, fold_v, fold_gates, fold_workspace;
  const int64_t kv_floats = fold_rows * shape.num_kv_heads * shape.head_dim;
  float* keys = fold_k.Reserve(kv_floats);
  float* values = fold_v.Reserve(kv_floats);
  float* log_gates = fold_gates.Reserve(fold_rows * shape.num_kv_heads);
  const kernels::AttentionRows fold{nullptr, keys, values, log_gates, nullptr};
  fold_workspace.Reserve(
      kernels::PrefillWorkspaceFloats(fold_shape, static_cast<int64_t>(chunks.size()), false));
  auto fold_buffers = [&] {
    each_layer([&](int layer, kernels::LayerOffsets offsets) {
      kernels::GatherDecodeBuffers(shape, device_buffered.Reserve(0), sessions, offsets, keys,
                                   values, log_gates, stream);
      kernels::PowerPrefill(fold_shape, fold, device_segments.Reserve(0) + layer * sessions,
                            sessions, device_chunks.Reserve(0), static_cast<int64_t>(chunks.size()),
                            fold_workspace.Reserve(0), stream);
    });
  };
  // Median ms per step over timed windows of N − 1 steps and of the fold after each (a step that
  // folds, or the separate fold).
  struct CycleTimes {
    double step_ms, fold_ms;
  };
  auto time_cycles = [&](const std::function<void()>& one_step, const std::function<void()>& fold) {
    std::vector<double> per_step, folds;
    for (int repeat = 0; repeat < 4; ++repeat) {  // the first is a warm-up
      const double window_ms = ElapsedMs(stream, [&] {
        for (int i = 0; i < window; ++i) one_step();
      });
      const double fold_ms = ElapsedMs(stream, fold);
      if (repeat > 0) {
        per_step.push_back(window_ms / window);
        folds.push_back(fold_ms);
      }
    }
    return CycleTimes{Median(per_step), Median(folds)};
  };
  auto fold_step = [&] { decode_step(true); };
  const std::function<void()> eager_fold =
      in_step ? std::function<void()>(fold_step) : std::function<void()>(fold_buffers);
  const double eager_ms = time_cycles(step, eager_fold).step_ms;
  // The same steps captured once as CUDA graphs and replayed, as the server's decode loop can.
  auto capture = [&](const std::function<void()>& work) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CudaCheck(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture");
    work();
    CudaCheck(cudaStreamEndCapture(stream, &graph), "capture");
    CudaCheck(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
    cudaGraphDestroy(graph);
    return exec;
  };
  // ms a step of `one_step` replayed as a CUDA graph, folding after each window with `fold`.
  auto graph_cycles = [&](const std::function<void()>& one_step,
                          const std::function<void()>& fold) {
    cudaGraphExec_t exec = capture(one_step);
    const CycleTimes times = time_cycles([&] { cudaGraphLaunch(exec, stream); }, fold);
    cudaGraphExecDestroy(exec);
    return times;
  };
  cudaGraphExec_t fold_graph = in_step ? capture(fold_step) : nullptr;
  const CycleTimes graph = graph_cycles(
      step,
      in_step ? std::function<void()>([&] { cudaGraphLaunch(fold_graph, stream); }) : eager_fold);
  if (fold_graph != nullptr) cudaGraphExecDestroy(fold_graph);
  const double graph_ms = graph.step_ms;
  // A session folds once every N tokens: the step amortised over a buffer's cycle. What folding
  // adds to a cycle: the step that folds less a plain one, or the separate fold.
  const double fold_ms = in_step ? graph.fold_ms - graph_ms : graph.fold_ms;
  const double N = shape.buffer_tokens;
  const double amortized_ms = graph_ms + fold_ms / N;
  // Bytes a step moves on average: S and z read once; the buffered keys and values (half full on
  // average) read by the attention over the buffer; once every N steps, S and z read and written
  // by the fold.
  const double buffer_bytes =
      0.5 * window * 2 * shape.head_dim * 4.0 * shape.num_kv_heads * s.layers;
  const double moved = sessions * (state_bytes * (1.0 + 2.0 / N) + buffer_bytes);
  const double tbps = moved / (amortized_ms * 1e-3) / 1e12;
  // What a kernel that rewrites the state every token would have to move in the same time.
  const double effective_tbps = 2.0 * state_bytes * sessions / (amortized_ms * 1e-3) / 1e12;
  spdlog::info(
      "decode {} x{} {}: {:.1f} us/step with folds ({:.1f} without, eager {:.1f}; a fold of every "
      "session adds {:.1f} us{}), {:.2f} TB/s = {:.0f}% of copy moved; {:.0f}% effective (state "
      "read and written every token)",
      s.name, sessions, bf16 ? "bf16" : "fp32", amortized_ms * 1e3, graph_ms * 1e3, eager_ms * 1e3,
      fold_ms * 1e3, in_step ? " to the step that fills the buffers" : "", tbps,
      100 * tbps / copy_tbps, 100 * effective_tbps / copy_tbps);
  nlohmann::json result = {{"shape", s.name},
                           {"sessions", sessions},
                           {"state_dtype", bf16 ? "bfloat16" : "float32"},
                           {"state_bytes_per_session", state_bytes},
                           {"decode_buffer_tokens", shape.buffer_tokens},
                           {"us_per_step", amortized_ms * 1e3},
                           {"us_per_step_without_fold", graph_ms * 1e3},
                           {"us_per_step_eager", eager_ms * 1e3},
                           {"fold_us", fold_ms * 1e3},
                           {"fold_in_step", in_step},
                           {"us_per_session_layer", amortized_ms * 1e3 / (sessions * s.layers)},
                           {"state_TBps", tbps},
                           {"bw_fraction", tbps / copy_tbps},
                           {"effective_bw_fraction", effective_tbps / copy_tbps}};
  if (absl::GetFlag(FLAGS_decode_parts)) {
    // Plain steps of one launch kind, the separate fold after each window (the finish alone fills
    // the buffers; after the stream alone it folds stale tokens, which only moves the states'
    // values). After the step's own figures: the stream alone leaves its sums in the scratch, for
    // the finish alone to zero.
    auto part_ms = [&](const std::function<void(kernels::LayerOffsets)>& launch) {
      return graph_cycles([&] { each_layer([&](int, kernels::LayerOffsets o) { launch(o); }); },
                          fold_buffers)
          .step_ms;
    };
    const double stream_ms = part_ms([&](kernels::LayerOffsets offsets) {
      kernels::PowerDecodeStream(shape, act.rows, device_rows.Reserve(0), sessions, offsets, bf16,
                                 scratch.Reserve(0), stream);
    });
    const double finish_ms = part_ms([&](kernels::LayerOffsets offsets) {
      kernels::PowerDecodeFinish(shape, act.rows, device_rows.Reserve(0), sessions, offsets,
                                 scratch.Reserve(0), stream);
    });
    spdlog::info(
        "decode {} x{} {} parts: {:.1f} us/step the stream launches alone, {:.1f} the "
        "finish launches alone, {:.1f} both",
        s.name, sessions, bf16 ? "bf16" : "fp32", stream_ms * 1e3, finish_ms * 1e3, graph_ms * 1e3);
    result["us_per_step_stream_alone"] = stream_ms * 1e3;
    result["us_per_step_finish_alone"] = finish_ms * 1e3;
  }
  return result;
}

// One layer of one sequence of `context` tokens prefilled from an empty state, in passes of at
// most kPassTokens rows with the state carried between them, as the engine runs long prompts.
constexpr int64_t kPassTokens = 65536;

nlohmann::json BenchPrefill(const AttentionShape& s, int64_t context, double gemm_tflops,
                            cudaStream_t stream) {
  DeviceShape device(s, stream);
  const int64_t pass = std::min(context, kPassTokens);
  DeviceArray<float> state, workspace;
  float* state_data = state.Reserve(device.StateElementsPerLayer());
  Activations act(device.shape, pass, stream);
  std::vector<kernels::PrefillSegment> segments = {{0, pass, state_data}};
  const std::vector<kernels::PrefillChunk> chunks =
      kernels::PlanPrefill(device.shape, segments, true);
  workspace.Reserve(
      kernels::PrefillWorkspaceFloats(device.shape, static_cast<int64_t>(chunks.size()), true));
  DeviceArray<kernels::PrefillSegment> device_segments;
  DeviceArray<kernels::PrefillChunk> device_chunks;
  device_segments.Upload(segments, stream);
  device_chunks.Upload(chunks, stream);
  const double ms = TimeMs(stream, context >= (1 << 18) ? 3 : 10, [&] {
    cudaMemsetAsync(state_data, 0, device.StateElementsPerLayer() * sizeof(float), stream);
    for (int64_t done = 0; done < context; done += pass) {
      kernels::PowerPrefill(device.shape, act.rows, device_segments.Reserve(0), 1,
                            device_chunks.Reserve(0), static_cast<int64_t>(chunks.size()),
                            workspace.Reserve(0), stream);
    }
  });
  CheckLaunch("prefill");
  const double D = device.shape.expanded_dim;
  const double chunk = kernels::PrefillChunkTokens(device.shape, true);
  // Useful matmul work per token: each query head reads the state (2·D·d) and attends causally
  // inside its chunk (2 · chunk/2 · d, twice); each kv head advances the state (2·D·d).
  const double flops_per_token = s.heads * (2.0 * D * s.head_dim + 2.0 * chunk * s.head_dim) +
                                 s.kv_heads * 2.0 * D * s.head_dim;
  const double tokens_per_s = context / (ms * 1e-3);
  const double tflops = flops_per_token * tokens_per_s / 1e12;
  spdlog::info(
      "prefill {} layer, {} tokens: {:.2f} ms, {:.2f} M tokens/s, {:.1f} TFLOP/s = {:.1f}% "
      "of GEMM",
      s.name, context, ms, tokens_per_s / 1e6, tflops, 100 * tflops / gemm_tflops);
  return {{"shape", s.name},  {"context", context},
          {"ms", ms},         {"tokens_per_s", tokens_per_s},
          {"TFLOPs", tflops}, {"flops_fraction", tflops / gemm_tflops}};
}

// Token sampling of `rows` rows of a GPT-2-sized vocabulary, normal random logits: greedy, or as
// the engine bench samples (temperature 0.8, top-p 0.95). Its ceiling is the time to read the
// logits once at the copy bandwidth, the least any sampler spends.
nlohmann::json BenchSampling(int rows, bool greedy, double copy_tbps, cudaStream_t stream) {
  constexpr int64_t kVocab = 50257;
  DeviceArray<float> logits;
  FillRandom(logits, rows * kVocab, 7);
  std::mt19937_64 random(static_cast<uint64_t>(rows));
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<kernels::SampleRowParams> params(rows);
  for (kernels::SampleRowParams& row : params) {
    row.temperature = greedy ? 0.0f : 0.8f;
    row.top_p = greedy ? 1.0f : 0.95f;
    row.uniform = uniform(random);
  }
  DeviceArray<kernels::SampleRowParams> device_params;
  device_params.Upload(params, stream);
  DeviceArray<int32_t> tokens;
  DeviceArray<float> logprobs;
  tokens.Reserve(rows);
  logprobs.Reserve(rows);
  const double us =
      1e3 * TimeMs(stream, 20, [&] {
        kernels::SampleRows(logits.Reserve(0), rows, kVocab, device_params.Reserve(0), nullptr,
                            nullptr, tokens.Reserve(0), logprobs.Reserve(0), stream);
      });
  CudaCheck(cudaGetLastError(), "SampleRows");
  const double read_us = rows * kVocab * 4.0 / (copy_tbps * 1e12) * 1e6;
  const std::string mode = greedy ? "greedy" : "temperature 0.8, top-p 0.95";
  spdlog::info(
      "sampling {} rows x {} ({}): {:.1f} us a call; the logits read once at copy "
      "bandwidth {:.2f} us ({:.1f}% of the call)",
      rows, kVocab, mode, us, read_us, 100.0 * read_us / us);
  return {
      {"rows", rows}, {"vocab", kVocab}, {"mode", mode}, {"us", us}, {"logits_read_us", read_us}};
}

// The GEMMs of projections that read the same input (a model's q, k, v and gate; SwiGLU's gate
// and up), BF16 in and fp32 out as the CUDA backend runs them, at `rows` rows: one GEMM a
// projection, one GEMM of their weights stacked, and the stack padded to a multiple of 64 output
// features (cuBLAS's tiles). Each as µs a call and TFLOP/s.
nlohmann::json BenchProjections(const std::string& model, const std::string& group,
                                int64_t in_features, const std::vector<int64_t>& out_features,
                                int64_t rows, cudaStream_t stream, cublasHandle_t cublas) {
  int64_t stacked = 0;
  for (int64_t features : out_features) stacked += features;
  const int64_t padded = (stacked + 63) / 64 * 64;
  DeviceArray<uint16_t> weights, inputs;
  DeviceArray<float> outputs;
  weights.Reserve(padded * in_features);
  inputs.Reserve(rows * in_features);
  outputs.Reserve(rows * padded);
  cudaMemsetAsync(weights.Reserve(0), 0, sizeof(uint16_t) * padded * in_features, stream);
  cudaMemsetAsync(inputs.Reserve(0), 0, sizeof(uint16_t) * rows * in_features, stream);
  const float alpha = 1.0f, beta = 0.0f;
  // outᵀ = W·xᵀ in column-major terms, as CudaBackend::Linear calls it.
  auto gemm = [&](int64_t first_feature, int64_t features) {
    CublasCheck(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(features),
                             static_cast<int>(rows), static_cast<int>(in_features), &alpha,
                             weights.Reserve(0) + first_feature * in_features, CUDA_R_16BF,
                             static_cast<int>(in_features), inputs.Reserve(0), CUDA_R_16BF,
                             static_cast<int>(in_features), &beta, outputs.Reserve(0), CUDA_R_32F,
                             static_cast<int>(features), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                "projection GEMM");
  };
  const std::vector<std::pair<std::string, std::function<void()>>> variants = {
      {"separate",
       [&] {
         int64_t first = 0;
         for (int64_t features : out_features) {
           gemm(first, features);
           first += features;
         }
       }},
      {"stacked", [&] { gemm(0, stacked); }},
      {"stacked, padded to 64", [&] { gemm(0, padded); }}};
  nlohmann::json report = {
      {"model", model}, {"group", group}, {"rows", rows}, {"in_features", in_features}};
  std::string line;
  for (const auto& [name, run] : variants) {
    const double us = 1e3 * TimeMs(stream, 20, run);
    const double tflops = 2.0 * rows * in_features * stacked / (us * 1e-6) / 1e12;
    report["us"][name] = us;
    line += fmt::format("{} {:.1f} us ({:.0f} TFLOP/s); ", name, us, tflops);
  }
  spdlog::info("projections {} {} ({} outputs from {}), {} rows: {}", model, group, stacked,
               in_features, rows, line);
  return report;
}

int Run() {
  // Flags first: a bad one fails before any measuring.
  const std::optional<std::vector<int64_t>> session_counts = ParseCounts(
      absl::GetFlag(FLAGS_decode_sessions), "decode_sessions", std::numeric_limits<int>::max());
  if (!session_counts) return 2;
  const std::vector<int> decode_sessions(session_counts->begin(), session_counts->end());
  const std::vector<std::string> shapes = absl::GetFlag(FLAGS_decode_shapes);
  const std::vector<std::string> dtypes = absl::GetFlag(FLAGS_decode_state_dtypes);
  for (const std::string& shape : shapes) {
    if (shape != k124m.name && shape != k14b.name) {
      spdlog::error("--decode_shapes: '{}' is not 124m or 14b", shape);
      return 2;
    }
  }
  for (const std::string& dtype : dtypes) {
    if (dtype != "float32" && dtype != "bfloat16") {
      spdlog::error("--decode_state_dtypes: '{}' is not float32 or bfloat16", dtype);
      return 2;
    }
  }
  auto wanted = [](const std::vector<std::string>& list, const std::string& name) {
    return std::find(list.begin(), list.end(), name) != list.end();
  };
  cudaStream_t stream;
  CudaCheck(cudaStreamCreate(&stream), "stream");
  cublasHandle_t cublas;
  CublasCheck(cublasCreate(&cublas), "cublas");
  CublasCheck(cublasSetStream(cublas, stream), "cublas stream");
  cudaDeviceProp props;
  cudaGetDeviceProperties(&props, 0);
  nlohmann::json report;
  report["gpu"] = props.name;
  const double copy_tbps = CopyTerabytesPerSecond(stream);
  const double gemm_tflops = GemmTeraflops(stream, cublas);
  spdlog::info("{}: copy {:.2f} TB/s, BF16 GEMM {:.0f} TFLOP/s", props.name, copy_tbps,
               gemm_tflops);
  report["copy_TBps"] = copy_tbps;
  report["gemm_TFLOPs"] = gemm_tflops;
  const double wgmma_64 = WgmmaChainTeraflops(72, stream);
  const double wgmma_128 = WgmmaChainTeraflops(136, stream);
  spdlog::info(
      "wgmma chains as the prefill passes issue them, alone: m64n72k16 {:.0f} TFLOP/s ({:.0f}% "
      "of GEMM), m64n136k16 {:.0f} TFLOP/s ({:.0f}%)",
      wgmma_64, 100 * wgmma_64 / gemm_tflops, wgmma_128, 100 * wgmma_128 / gemm_tflops);
  report["wgmma_chain_TFLOPs"] = {{"head_dim_64", wgmma_64}, {"head_dim_128", wgmma_128}};

  size_t free_bytes = 0, total_bytes = 0;
  cudaMemGetInfo(&free_bytes, &total_bytes);
  for (bool bf16 : {false, true}) {
    if (!absl::GetFlag(FLAGS_decode) || !wanted(dtypes, bf16 ? "bfloat16" : "float32")) continue;
    for (int sessions : decode_sessions) {
      if (wanted(shapes, k124m.name))
        report["decode"].push_back(BenchDecode(k124m, sessions, bf16, copy_tbps, stream));
    }
    if (!wanted(shapes, k14b.name)) continue;
    const int64_t per_session =
        DeviceShape(k14b, stream).StateElementsPerLayer() * (bf16 ? 2 : 4) * k14b.layers;
    const int fit = static_cast<int>(std::min<int64_t>(256, free_bytes * 0.8 / per_session));
    for (int sessions : decode_sessions) {
      if (sessions <= fit)
        report["decode"].push_back(BenchDecode(k14b, sessions, bf16, copy_tbps, stream));
    }
    // The 14B shape also at the most sessions that fit, when that is between the counts asked.
    if (fit < decode_sessions.back() && fit > decode_sessions.front())
      report["decode"].push_back(BenchDecode(k14b, fit, bf16, copy_tbps, stream));
  }
  if (absl::GetFlag(FLAGS_sampling)) {
    for (bool greedy : {true, false}) {
      for (int rows : decode_sessions) {
        report["sampling"].push_back(BenchSampling(rows, greedy, copy_tbps, stream));
      }
    }
  }
  if (absl::GetFlag(FLAGS_projections)) {
    for (const char* model : {"124m", "14b"}) {
      const ModelConfig c = PresetConfig(model).value();
      std::vector<int64_t> attention_in = {c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim,
                                           c.num_kv_heads * c.head_dim};
      if (c.gating) attention_in.push_back(c.num_kv_heads);
      for (int64_t rows : {1, 16, 256, 8192, 65536}) {
        report["projections"].push_back(BenchProjections(model, "q, k, v, gate", c.hidden_size,
                                                         attention_in, rows, stream, cublas));
        report["projections"].push_back(BenchProjections(model, "SwiGLU gate, up", c.hidden_size,
                                                         {c.intermediate_size, c.intermediate_size},
                                                         rows, stream, cublas));
      }
    }
  }
  if (absl::GetFlag(FLAGS_prefill)) {
    // Doubling, as the SDPA and Manifest peers run, so that every context they reach compares.
    for (int64_t context = absl::GetFlag(FLAGS_min_prefill_context);
         context <= absl::GetFlag(FLAGS_max_prefill_context); context *= 2) {
      report["prefill"].push_back(BenchPrefill(k124m, context, gemm_tflops, stream));
    }
    for (int64_t context : {4096, 65536}) {
      report["prefill"].push_back(BenchPrefill(k14b, context, gemm_tflops, stream));
    }
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
