// The CUDA backend against the float64 oracle and against the CPU backend. Runs on the GPU
// machine (tests/gpu/run.sh); every figure it prints goes into bench/results/gpu_correctness.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/power_prefill_mma.h"
#include "model/state_layout.h"
#include "tests/unit/attention_run.h"
#include "tests/unit/held_out_loss.h"
#include "tests/unit/model_files.h"
#include "tests/unit/oracle_cases.h"

namespace sympow {
namespace {

using testing::AttentionConfig;
using testing::AttentionInputs;
using testing::AttentionRun;
using testing::MaxRelativeError;

// Logits through BF16 weights and BF16 GEMM inputs (fp32 accumulate) against float64.
constexpr double kGpuLogitTolerance = 3e-2;
// The general chunked prefill multiplies on tensor cores in TF32 (10-bit mantissa), fp32
// accumulate, and decode continues from its states in fp32; degree 4 raises relative errors
// in q·k fourfold (measured 6.3e-3 at d 32, p 4).
constexpr double kPrefillTolerance = 1e-2;
// Degree 2 at head_dim 64 and 128 prefills with BF16 inputs (8-bit mantissa: φ values, the state
// before each chunk and the values are rounded once each), fp32 accumulate.
constexpr double kBf16PrefillTolerance = 1.5e-2;
// bf16 state storage: one rounding of 2^-9 relative can land either side.
constexpr double kBf16StateTolerance = 1.5e-2;

// The repository root: $SYMPOW_SOURCE_DIR on the GPU machine, else where this was built from.
std::string SourcePath(const std::string& relative) {
  const char* root = std::getenv("SYMPOW_SOURCE_DIR");
  return std::string(root != nullptr ? root : SYMPOW_SOURCE_DIR) + "/" + relative;
}

double PrefillTolerance(const ModelConfig& c) {
  return kernels::UsesTensorCorePrefill(static_cast<int>(c.head_dim), static_cast<int>(c.degree))
             ? kBf16PrefillTolerance
             : kPrefillTolerance;
}

void Report(const std::string& what, double error) {
  std::printf("[figure] %s: %.3g\n", what.c_str(), error);
}

TEST(GpuOracle, PrefillAndDecodeLogitsMatchTheFloat64Oracle) {
  const std::vector<testing::OracleCase> cases = testing::LoadOracleCases();
  ASSERT_FALSE(cases.empty());
  for (const testing::OracleCase& c : cases) {
    auto engine = testing::MakeEngine(c.dir, "cuda");
    ASSERT_NE(engine, nullptr) << c.name;
    const int64_t n = static_cast<int64_t>(c.tokens.size());
    SessionId session = engine->CreateSession().value();
    std::vector<float> prefill =
        engine->Prefill(session, std::span(c.tokens).first(c.prompt_length), LogitsFor::kEveryToken)
            .value();
    double worst = MaxRelativeError(prefill, c.LogitsAt(0, c.prompt_length));
    for (int64_t t = c.prompt_length; t < n; ++t) {
      std::vector<float> step = engine->Decode({{DecodeInput{session, c.tokens[t]}}}).value();
      if (t + 1 < n || c.LogitsAt(t, 1).size() == step.size()) {
        worst = std::max(worst, MaxRelativeError(step, c.LogitsAt(t, 1)));
      }
    }
    Report(absl::StrCat("oracle ", c.name, " (prefill + decode logits)"), worst);
    EXPECT_LT(worst, kGpuLogitTolerance) << c.name;
  }
}

struct KernelShape {
  int64_t head_dim, degree, heads, kv_heads;
  bool gating;
  StateDType state;
  int64_t buffer_tokens = 0;  // decode buffer; 0: the config's default
  std::string Name() const {
    return absl::StrCat("d", head_dim, " p", degree, " heads ", heads, "/", kv_heads,
                        gating ? " gated" : "",
                        state == StateDType::kBFloat16 ? " bf16-state" : " fp32-state",
                        buffer_tokens > 0 ? absl::StrCat(" buffer ", buffer_tokens) : "");
  }
  ModelConfig Config() const {
    ModelConfig c = AttentionConfig(head_dim, degree, heads, kv_heads, gating, state);
    if (buffer_tokens > 0) c.decode_buffer_tokens = buffer_tokens;
    return c;
  }
};

class GpuKernels : public ::testing::TestWithParam<KernelShape> {};

// The largest relative difference of any session's S and z, GPU against CPU.
double StatesError(AttentionRun& gpu, AttentionRun& cpu) {
  double error = 0.0;
  for (size_t i = 0; i < gpu.slots.size(); ++i) {
    error = std::max(error, MaxRelativeError(gpu.State(gpu.slots[i]), cpu.State(cpu.slots[i])));
  }
  return error;
}

// Ragged prefill segments (1 … 777 rows, across every chunk boundary) in one launch, then one
// decode step of each session in one batch, against the CPU backend: outputs and states.
TEST_P(GpuKernels, PrefillAndDecodeMatchTheCpuBackend) {
  const KernelShape s = GetParam();
  const ModelConfig c = s.Config();
  const std::vector<int64_t> lengths = {1, 2, 63, 64, 65, 128, 200, 255, 256, 257, 777};
  const int64_t sessions = static_cast<int64_t>(lengths.size());
  int64_t prefill_rows = 0;
  std::vector<AttentionSegment> prefill;
  for (int64_t i = 0; i < sessions; ++i) {
    prefill.push_back({prefill_rows, lengths[i], static_cast<int32_t>(i)});
    prefill_rows += lengths[i];
  }
  std::vector<AttentionSegment> decode;
  for (int64_t i = 0; i < sessions; ++i) decode.push_back({i, 1, static_cast<int32_t>(i)});
  const AttentionInputs inputs(c, prefill_rows + sessions, 7);
  AttentionRun cpu("cpu", c, inputs, sessions), gpu("cuda", c, inputs, sessions);
  for (AttentionRun* run : {&cpu, &gpu}) {
    run->Run(0, prefill_rows, prefill);
    run->Run(prefill_rows, sessions, decode);
  }
  const std::vector<float> expected = cpu.Output(), actual = gpu.Output();
  const int64_t width = c.num_heads * c.head_dim;
  const std::span<const float> e(expected), a(actual);
  const double prefill_error =
      MaxRelativeError(a.first(prefill_rows * width), e.first(prefill_rows * width));
  // The tensor-core prefill rounds q and k to bf16: where a session's first tokens have
  // (s·q·k)^p near ε, out = w·v / (w + ε) moves with the rounding of q·k by up to a few tenths
  // of v (the CPU backend fed bf16-rounded q and k differs from itself by as much: 0.13 at heads
  // 8/4). Rows at least kWarmTokens into their session are held to the tolerance, as decode's.
  constexpr int64_t kWarmTokens = 63;
  double prefill_scale = 0.0, warm_prefill_difference = 0.0;
  for (int64_t i = 0, row = 0; i < sessions; ++i) {
    for (int64_t t = 0; t < lengths[i]; ++t, ++row) {
      for (int64_t j = row * width; j < (row + 1) * width; ++j) {
        prefill_scale = std::max(prefill_scale, std::fabs(double{e[j]}));
        if (t >= kWarmTokens) {
          warm_prefill_difference =
              std::max(warm_prefill_difference, std::fabs(double{a[j]} - double{e[j]}));
        }
      }
    }
  }
  const double warm_prefill_error = warm_prefill_difference / prefill_scale;
  const double decode_error =
      MaxRelativeError(a.subspan(prefill_rows * width), e.subspan(prefill_rows * width));
  // A bf16 state a token or two old is mostly cancellation (φ(q)·z = (q·k)^p from terms far
  // larger), so one rounding of S or z landing the other side moves its output far more than a
  // warm state's; sessions of at least kWarmTokens are held to the bf16 tolerance, each is shown.
  // Each session's largest difference is taken relative to the largest output of any session,
  // as decode_error is.
  double scale = 0.0;
  for (float x : e.subspan(prefill_rows * width)) scale = std::max(scale, std::fabs(double{x}));
  double warm_decode_error = 0.0;
  for (int64_t i = 0; i < sessions; ++i) {
    double difference = 0.0;
    for (int64_t j = (prefill_rows + i) * width; j < (prefill_rows + i + 1) * width; ++j) {
      difference = std::max(difference, std::fabs(double{a[j]} - double{e[j]}));
    }
    const double error = difference / scale;
    if (lengths[i] >= kWarmTokens) warm_decode_error = std::max(warm_decode_error, error);
    if (s.state == StateDType::kBFloat16) {
      Report(absl::StrCat(s.Name(), " decode output after ", lengths[i], " tokens vs CPU"), error);
    }
  }
  const double state_error = StatesError(gpu, cpu);
  Report(absl::StrCat(s.Name(), " prefill outputs vs CPU"), prefill_error);
  Report(absl::StrCat(s.Name(), " prefill outputs from token ", kWarmTokens, " vs CPU"),
         warm_prefill_error);
  Report(absl::StrCat(s.Name(), " decode outputs vs CPU"), decode_error);
  Report(absl::StrCat(s.Name(), " states vs CPU"), state_error);
  const bool bf16 = s.state == StateDType::kBFloat16;
  const double prefill_tolerance = PrefillTolerance(c);
  const bool bf16_inputs =
      kernels::UsesTensorCorePrefill(static_cast<int>(c.head_dim), static_cast<int>(c.degree));
  EXPECT_LT(bf16_inputs ? warm_prefill_error : prefill_error, prefill_tolerance);
  EXPECT_LT(bf16 ? warm_decode_error : decode_error,
            bf16 ? kBf16StateTolerance : prefill_tolerance);
  EXPECT_LT(state_error, bf16 ? kBf16StateTolerance : prefill_tolerance);
}

// Many sessions, each prefilled with kPrompt tokens in one launch (session i's rows first), then
// decoding as one batch from their own states. (Warm states: right after an empty state the
// output is dominated by ε when (s·q·k)^p is tiny, where any two summation orders differ.)
struct SessionBatch {
  static constexpr int64_t kPrompt = 32;
  int64_t sessions, prompt_rows;
  std::vector<AttentionSegment> prompts, step;
  explicit SessionBatch(int64_t count) : sessions(count), prompt_rows(count * kPrompt) {
    for (int64_t i = 0; i < sessions; ++i) {
      prompts.push_back({i * kPrompt, kPrompt, static_cast<int32_t>(i)});
      step.push_back({i, 1, static_cast<int32_t>(i)});
    }
  }
  // Decode step `n` after the prompts.
  void Decode(AttentionRun& run, int64_t n) const {
    run.Run(prompt_rows + n * sessions, sessions, step);
  }
};

bool TooLargeFor256Sessions(const ModelConfig& c) {
  return StateLayout::ForConfig(c).Bytes() > (int64_t{64} << 20);
}

// The outputs after the prompts, GPU against CPU.
double DecodeError(const ModelConfig& c, const SessionBatch& batch, AttentionRun& gpu,
                   AttentionRun& cpu) {
  const int64_t width = c.num_heads * c.head_dim;
  const std::vector<float> a = gpu.Output(), e = cpu.Output();
  return MaxRelativeError(std::span(a).subspan(batch.prompt_rows * width),
                          std::span(e).subspan(batch.prompt_rows * width));
}

double Tolerance(const KernelShape& s) {
  return s.state == StateDType::kBFloat16 ? kBf16StateTolerance : PrefillTolerance(s.Config());
}

// Decoding from the very same states on both backends (the CPU backend's after its prefill,
// copied into the GPU's slots) leaves only the decode kernels' own arithmetic: fp32 states
// multiplied in fp32 or in TF32 parts (3xTF32), bf16 ones with φ(q) in two bf16 parts, both meant
// to keep about fp32's precision. 256 sessions, so that at head_dim 128 the column warps split
// φ(q) (kSplitPhiRows). Measured on an H200 at 256 sessions: at most 3.6e-5 (degree 4), 1.14e-5
// at the 3xTF32 shapes (bench/results/raw/gpu_tests_c30e7bb.log).
constexpr double kSameStateDecodeTolerance = 1e-4;
TEST_P(GpuKernels, DecodeFromTheSameStatesMatchesTheCpuBackendClosely) {
  const KernelShape s = GetParam();
  const ModelConfig c = s.Config();
  const SessionBatch batch(TooLargeFor256Sessions(c) ? 4 : 256);
  const AttentionInputs inputs(c, batch.prompt_rows + batch.sessions, 13);
  AttentionRun cpu("cpu", c, inputs, batch.sessions), gpu("cuda", c, inputs, batch.sessions);
  cpu.Run(0, batch.prompt_rows, batch.prompts);
  std::vector<std::byte> state(cpu.backend->state_layout().Bytes());
  for (int64_t i = 0; i < batch.sessions; ++i) {
    cpu.backend->ReadStateSlot(cpu.slots[i], state);
    gpu.backend->WriteStateSlot(gpu.slots[i], state);
  }
  batch.Decode(cpu, 0);
  batch.Decode(gpu, 0);
  const double error = DecodeError(c, batch, gpu, cpu);
  Report(absl::StrCat(s.Name(), " decode from the same states vs CPU"), error);
  EXPECT_LT(error, kSameStateDecodeTolerance);
}

// 256 sessions decoding three steps in a row.
TEST_P(GpuKernels, BatchOf256DecodingSessionsMatchesTheCpuBackend) {
  const KernelShape s = GetParam();
  const ModelConfig c = s.Config();
  if (TooLargeFor256Sessions(c)) GTEST_SKIP() << "state too large for 256";
  constexpr int64_t kSteps = 3;
  const SessionBatch batch(256);
  const AttentionInputs inputs(c, batch.prompt_rows + batch.sessions * kSteps, 11);
  AttentionRun cpu("cpu", c, inputs, batch.sessions), gpu("cuda", c, inputs, batch.sessions);
  for (AttentionRun* run : {&cpu, &gpu}) {
    run->Run(0, batch.prompt_rows, batch.prompts);
    for (int64_t step = 0; step < kSteps; ++step) batch.Decode(*run, step);
  }
  const double error = DecodeError(c, batch, gpu, cpu);
  Report(absl::StrCat(s.Name(), " 256-session decode outputs vs CPU"), error);
  EXPECT_LT(error, Tolerance(s));
}

// Five decode steps, the sessions' buffers folded into their states in one call, one more step:
// states and outputs against the CPU backend. At 40 sessions the fold's blocks walk a few tiles
// of k-rows each (the last block fewer), at 256 the most (TilesPerBlock). Only the tensor-core
// prefill walks tiles; the other shapes fold through the CUDA-core prefill, which
// PrefillAndDecodeMatchTheCpuBackend covers, and their CPU reference here would take most of a
// minute.
TEST_P(GpuKernels, FoldingManySessionsMatchesTheCpuBackend) {
  const KernelShape s = GetParam();
  const ModelConfig c = s.Config();
  if (TooLargeFor256Sessions(c)) GTEST_SKIP() << "state too large for 256";
  if (!kernels::UsesTensorCorePrefill(static_cast<int>(c.head_dim), static_cast<int>(c.degree))) {
    GTEST_SKIP() << "folds through the CUDA-core prefill, which walks no tiles";
  }
  constexpr int64_t kSteps = 5;
  for (const int64_t sessions : {40, 256}) {
    const SessionBatch batch(sessions);
    const AttentionInputs inputs(c, batch.prompt_rows + sessions * (kSteps + 1), 17);
    AttentionRun cpu("cpu", c, inputs, sessions), gpu("cuda", c, inputs, sessions);
    for (AttentionRun* run : {&cpu, &gpu}) {
      run->Run(0, batch.prompt_rows, batch.prompts);
      for (int64_t step = 0; step < kSteps; ++step) batch.Decode(*run, step);
      std::vector<BufferedSession> buffered;
      for (int32_t slot : run->slots) buffered.push_back({slot, kSteps});
      run->backend->FoldDecodeBuffers(buffered);
      batch.Decode(*run, kSteps);
    }
    const double state_error = StatesError(gpu, cpu);
    const double output_error = DecodeError(c, batch, gpu, cpu);
    const std::string name = absl::StrCat(s.Name(), " ", sessions, " sessions");
    Report(absl::StrCat(name, ": states after a fold vs CPU"), state_error);
    Report(absl::StrCat(name, ": decode outputs around a fold vs CPU"), output_error);
    EXPECT_LT(state_error, Tolerance(s));
    EXPECT_LT(output_error, Tolerance(s));
  }
}

// One decode step of `segments` (first_row relative to `first`, state_slot a session index) as
// the engine runs it: a session whose token fills its buffers folds them in the step on a backend
// that does that, after it otherwise. `buffered` counts each session's buffered tokens.
void DecodeStepFolding(AttentionRun& run, int64_t first, std::vector<AttentionSegment> segments,
                       std::vector<int64_t>& buffered) {
  const bool in_step = run.backend->FoldsFullBuffersInDecode();
  const int64_t capacity = run.config.decode_buffer_tokens;
  for (AttentionSegment& segment : segments) {
    segment.folds_buffers = in_step && buffered[segment.state_slot] + 1 == capacity;
  }
  run.Run(first, static_cast<int64_t>(segments.size()), segments);
  std::vector<BufferedSession> full;
  for (const AttentionSegment& segment : segments) {
    int64_t& count = buffered[segment.state_slot];
    if (++count < capacity) continue;
    if (!in_step) full.push_back({run.slots[segment.state_slot], count});
    count = 0;
  }
  if (!full.empty()) run.backend->FoldDecodeBuffers(full);
}

// A whole buffer cycle of decode steps where the CUDA backend folds in the step that fills a
// buffer, against the CPU backend folding after it. The even sessions decode a token alone first,
// so that each fold step holds sessions that fold and sessions that do not, and the even ones
// decode on from their folded states. Every step's outputs and the states at the end.
TEST_P(GpuKernels, FoldingInTheStepThatFillsTheBuffersMatchesTheCpuBackend) {
  const KernelShape s = GetParam();
  const ModelConfig c = s.Config();
  if (TooLargeFor256Sessions(c)) GTEST_SKIP() << "state too large for 256";
  const int64_t capacity = c.decode_buffer_tokens;
  for (const int64_t sessions : {24, 160}) {
    const SessionBatch batch(sessions);
    const int64_t evens = (sessions + 1) / 2;
    const AttentionInputs inputs(c, batch.prompt_rows + evens + sessions * capacity, 19);
    AttentionRun cpu("cpu", c, inputs, sessions), gpu("cuda", c, inputs, sessions);
    if (!gpu.backend->FoldsFullBuffersInDecode()) GTEST_SKIP() << "folds after the step";
    std::vector<AttentionSegment> even_step;
    for (int64_t i = 0; i < sessions; i += 2) {
      even_step.push_back({i / 2, 1, static_cast<int32_t>(i)});
    }
    for (AttentionRun* run : {&cpu, &gpu}) {
      std::vector<int64_t> buffered(sessions, 0);
      run->Run(0, batch.prompt_rows, batch.prompts);
      DecodeStepFolding(*run, batch.prompt_rows, even_step, buffered);
      for (int64_t step = 0; step < capacity; ++step) {
        DecodeStepFolding(*run, batch.prompt_rows + evens + step * sessions, batch.step, buffered);
      }
    }
    const double state_error = StatesError(gpu, cpu);
    const double output_error = DecodeError(c, batch, gpu, cpu);
    const std::string name = absl::StrCat(s.Name(), " ", sessions, " sessions");
    Report(absl::StrCat(name, ": states after folding in the step vs CPU"), state_error);
    Report(absl::StrCat(name, ": decode outputs over a buffer cycle folding in the step vs CPU"),
           output_error);
    EXPECT_LT(state_error, Tolerance(s));
    EXPECT_LT(output_error, Tolerance(s));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GpuKernels,
                         ::testing::Values(KernelShape{64, 2, 2, 2, true, StateDType::kFloat32},
                                           KernelShape{64, 2, 2, 2, false, StateDType::kFloat32},
                                           KernelShape{64, 2, 2, 2, true, StateDType::kBFloat16},
                                           KernelShape{64, 2, 8, 2, true, StateDType::kBFloat16},
                                           KernelShape{128, 2, 10, 2, true, StateDType::kFloat32},
                                           KernelShape{128, 2, 10, 2, true, StateDType::kBFloat16},
                                           KernelShape{32, 4, 4, 2, true, StateDType::kFloat32},
                                           KernelShape{64, 4, 1, 1, true, StateDType::kFloat32},
                                           KernelShape{64, 4, 1, 1, true, StateDType::kBFloat16},
                                           KernelShape{32, 2, 8, 1, true, StateDType::kBFloat16},
                                           // 1,024 (session, kv head) pairs at 256 sessions:
                                           // the warp-per-pair finish, on odd buffer rows.
                                           KernelShape{64, 2, 8, 4, true, StateDType::kBFloat16,
                                                       37},
                                           KernelShape{64, 2, 8, 4, true, StateDType::kFloat32}));

// One session: 1M tokens prefilled in one call against the same 1M tokens decoded one by one.
TEST(GpuLongContext, MillionTokenPrefillMatchesMillionDecodeSteps) {
  constexpr int64_t kTokens = 1 << 20;
  const ModelConfig c = AttentionConfig(64, 2, 1, 1, true, StateDType::kFloat32);
  const AttentionInputs inputs(c, kTokens, 13);
  AttentionRun prefilled("cuda", c, inputs, 1), decoded("cuda", c, inputs, 1);
  prefilled.Run(0, kTokens, {{0, kTokens, 0}});
  const std::vector<AttentionSegment> one = {{0, 1, 0}};
  // As the engine does: a session's decode buffers are folded as they fill.
  const int64_t buffer = c.decode_buffer_tokens;
  for (int64_t t = 0; t < kTokens; ++t) {
    decoded.Run(t, 1, one);
    if ((t + 1) % buffer == 0) {
      const BufferedSession full[] = {{0, buffer}};
      decoded.backend->FoldDecodeBuffers(full);
    }
  }
  const std::vector<float> a = prefilled.Output(), b = decoded.Output();
  constexpr int64_t kTail = 1024;
  const int64_t width = c.num_heads * c.head_dim;
  const double output_error =
      MaxRelativeError(std::span(a).last(kTail * width), std::span(b).last(kTail * width));
  const double state_error = MaxRelativeError(prefilled.State(0), decoded.State(0));
  bool finite = true;
  for (float x : a) finite = finite && std::isfinite(x);
  Report("1M tokens: last 1024 outputs, prefill vs decode", output_error);
  Report("1M tokens: final state, prefill vs decode", state_error);
  EXPECT_TRUE(finite);
  EXPECT_LT(output_error, PrefillTolerance(c));
  EXPECT_LT(state_error, PrefillTolerance(c));
}

// The bundled model end to end: 4k tokens of held-out text prefilled, then 100 decode steps (the
// decode buffers of 64 tokens fill and are folded on the way).
TEST(GpuModel, BundledModelLogitsMatchTheCpuEngine) {
  const std::string dir = SourcePath("models/sympow-tiny");
  auto cpu = testing::MakeEngine(dir, "cpu"), gpu = testing::MakeEngine(dir, "cuda");
  ASSERT_NE(cpu, nullptr);
  std::vector<int32_t> ids = testing::HeldOutTokens(SourcePath(""), *cpu);
  ids.resize(4096 + 100);
  ASSERT_NE(gpu, nullptr);
  double worst = 0.0;
  SessionId cs = cpu->CreateSession().value(), gs = gpu->CreateSession().value();
  const std::span<const int32_t> prompt = std::span(ids).first(4096);
  worst = MaxRelativeError(gpu->Prefill(gs, prompt, LogitsFor::kEveryToken).value(),
                           cpu->Prefill(cs, prompt, LogitsFor::kEveryToken).value());
  Report("bundled model, 4096-token prefill logits vs CPU", worst);
  double decode_worst = 0.0;
  for (size_t t = 4096; t < ids.size(); ++t) {
    decode_worst =
        std::max(decode_worst, MaxRelativeError(gpu->Decode({{DecodeInput{gs, ids[t]}}}).value(),
                                                cpu->Decode({{DecodeInput{cs, ids[t]}}}).value()));
  }
  Report("bundled model, 100 decode steps logits vs CPU", decode_worst);
  EXPECT_LT(worst, kGpuLogitTolerance);
  EXPECT_LT(decode_worst, kGpuLogitTolerance);
}

// A new session on `engine` with `tokens` prefilled.
SessionId Prefilled(Engine& engine, std::span<const int32_t> tokens) {
  const SessionId session = engine.CreateSession().value();
  engine.Prefill(session, tokens).value();
  return session;
}

// The tokens in the decode buffers of the slot padding rows decode on (none, as nothing folds
// them).
absl::StatusOr<int64_t> PaddingSlotBufferedTokens(Backend& backend) {
  std::vector<std::byte> padding(backend.state_layout().Bytes());
  backend.ReadStateSlot(backend.PaddingStateSlot(), padding);
  return BufferedTokens(backend.state_layout(), padding);
}

// The bundled model on two CUDA engines, one replaying decode steps as CUDA graphs, one running
// them operation by operation, with the same sessions prefilled on both (session i from token
// i·1000 of the held-out text).
class RecordedAndEager : public ::testing::Test {
 protected:
  void Prefill(int sessions, int prompt) {
    const std::string dir = SourcePath("models/sympow-tiny");
    recorded = testing::MakeEngine(dir, "cuda");
    eager = testing::MakeEngine(dir, "cuda", {.record_decode_steps = false});
    ASSERT_NE(recorded, nullptr);
    ASSERT_NE(eager, nullptr);
    ids = testing::HeldOutTokens(SourcePath(""), *eager);
    prompt_tokens = prompt;
    for (int i = 0; i < sessions; ++i) {
      const std::span<const int32_t> tokens = std::span(ids).subspan(i * 1000, prompt);
      on_recorded.push_back(Prefilled(*recorded, tokens));
      on_eager.push_back(Prefilled(*eager, tokens));
    }
  }
  // The next decode step of the first `sessions` sessions on both engines; the largest relative
  // difference of their logits.
  double Step(int sessions) {
    std::vector<DecodeInput> a, b;
    for (int i = 0; i < sessions; ++i) {
      const int32_t token = ids[i * 1000 + prompt_tokens + step];
      a.push_back({on_recorded[i], token});
      b.push_back({on_eager[i], token});
    }
    ++step;
    const absl::StatusOr<std::vector<float>> got = recorded->Decode(a);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? MaxRelativeError(*got, eager->Decode(b).value()) : 1.0;
  }

  std::unique_ptr<Engine> recorded, eager;
  std::vector<int32_t> ids;
  std::vector<SessionId> on_recorded, on_eager;
  int prompt_tokens = 0;
  int64_t step = 0;
};

// Decode steps replayed as CUDA graphs give the logits of the same steps run operation by
// operation: batches padded to recorded sizes (5 → 8 rows, 12 → 16, 3 → 4), a recording made
// stale by a longer batch in between and captured again, and single-session steps.
TEST_F(RecordedAndEager, RecordedDecodeStepsMatchStepsRunOperationByOperation) {
  ASSERT_NO_FATAL_FAILURE(Prefill(12, 100));
  double worst = 0.0;
  for (int sessions : {5, 5, 5, 12, 12, 12, 1, 1, 1, 3, 3}) worst = std::max(worst, Step(sessions));
  // A 3,000-token prefill grows the activations: every recording is stale after it.
  SessionId long_recorded = recorded->CreateSession().value();
  recorded->Prefill(long_recorded, std::span(ids).first(3000)).value();
  for (int sessions : {5, 5, 5, 5}) worst = std::max(worst, Step(sessions));
  const Backend::RecordingCounts counts = recorded->backend().recording_counts();
  Report("recorded (CUDA graph) decode steps vs eager steps, logits", worst);
  std::printf("[figure] CUDA graphs captured %lld, replayed %lld\n",
              static_cast<long long>(counts.captured), static_cast<long long>(counts.replayed));
  // Captured at 8, 16, 1, 4 rows, then at 8 again after the prefill.
  EXPECT_EQ(counts.captured, 5);
  EXPECT_EQ(counts.replayed, 1 + 1 + 1 + 0 + 2);
  EXPECT_LT(worst, kBf16StateTolerance);
}

// Padding rows decode on a spare slot that nothing folds: over several buffer cycles of padded
// steps (5 sessions → 8 rows) its decode buffers stay empty, while the sessions' own buffers fold
// and their logits match the same steps run operation by operation.
TEST_F(RecordedAndEager, PaddedStepsOverManyBufferCyclesLeaveThePaddingSlotEmpty) {
  ASSERT_NO_FATAL_FAILURE(Prefill(5, 10));
  double worst = 0.0;
  for (int64_t i = 0; i < 3 * recorded->config().decode_buffer_tokens + 5; ++i) {
    worst = std::max(worst, Step(5));
  }
  const absl::StatusOr<int64_t> buffered = PaddingSlotBufferedTokens(recorded->backend());
  ASSERT_TRUE(buffered.ok()) << buffered.status();
  EXPECT_EQ(*buffered, 0);
  Report("padded steps over 3 buffer cycles vs eager steps, logits", worst);
  EXPECT_LT(worst, kBf16StateTolerance);
}

// The bundled model with bf16 states, whose decode folds a full buffer in the step that fills it:
// five sessions at different points of their buffer cycles (session i joins the steps at step i)
// decode over two cycles on the CUDA engine (steps replayed as CUDA graphs, padded to 8 rows) and
// on the CPU engine, which folds after the step. The logits of every step agree, and the padding
// slot's buffers stay empty.
TEST(GpuModel, Bf16StatesFoldingInTheStepMatchTheCpuEngine) {
  testing::TempDir dir;
  const std::string source = SourcePath("models/sympow-tiny");
  for (const char* name : {"model.safetensors", "tokenizer.json"}) {
    std::filesystem::copy_file(source + "/" + name, dir.File(name));
  }
  std::string config = testing::ReadFile(source + "/config.json");
  const std::string fp32 = "\"state_dtype\": \"float32\"";
  const size_t at = config.find(fp32);
  ASSERT_NE(at, std::string::npos);
  config.replace(at, fp32.size(), "\"state_dtype\": \"bfloat16\"");
  testing::WriteFile(dir.File("config.json"), config);
  auto gpu = testing::MakeEngine(dir.path(), "cuda");
  auto cpu = testing::MakeEngine(dir.path(), "cpu");
  ASSERT_NE(gpu, nullptr);
  ASSERT_NE(cpu, nullptr);
  ASSERT_TRUE(gpu->backend().FoldsFullBuffersInDecode());
  const std::vector<int32_t> ids = testing::HeldOutTokens(SourcePath(""), *cpu);
  constexpr int kSessions = 5, kPrompt = 40;
  std::vector<SessionId> on_gpu, on_cpu;
  for (int i = 0; i < kSessions; ++i) {
    const std::span<const int32_t> prompt = std::span(ids).subspan(i * 1000, kPrompt);
    on_gpu.push_back(Prefilled(*gpu, prompt));
    on_cpu.push_back(Prefilled(*cpu, prompt));
  }
  const int64_t steps = 2 * gpu->config().decode_buffer_tokens + kSessions;
  std::vector<int64_t> decoded(kSessions, 0);
  double worst = 0.0;
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<DecodeInput> a, b;
    for (int i = 0; i < kSessions && i <= step; ++i) {
      const int32_t token = ids[i * 1000 + kPrompt + decoded[i]++];
      a.push_back({on_gpu[i], token});
      b.push_back({on_cpu[i], token});
    }
    const absl::StatusOr<std::vector<float>> got = gpu->Decode(a);
    ASSERT_TRUE(got.ok()) << got.status();
    worst = std::max(worst, MaxRelativeError(*got, cpu->Decode(b).value()));
  }
  const absl::StatusOr<int64_t> buffered = PaddingSlotBufferedTokens(gpu->backend());
  ASSERT_TRUE(buffered.ok()) << buffered.status();
  EXPECT_EQ(*buffered, 0);
  Report("bundled model with bf16 states, decode folding in the step, logits vs CPU", worst);
  EXPECT_LT(worst, kGpuLogitTolerance);
}

// The bundled model after a 1M-token prefix on the GPU (the held-out text, cycled): everything
// stays finite and the loss on the next 1,024 tokens is no worse than after a 1,024-token prefix
// of the same stream, by more than kLongContextMarginNats (as tests/unit/long_context_test.cc at
// 100k on the CPU).
TEST(GpuModel, HeldOutLossAfterAMillionTokensIsNoWorseThanAfterAShortPrefix) {
  constexpr int64_t kPrefix = 1 << 20, kShort = 1024, kScored = 1024;
  constexpr double kLongContextMarginNats = 0.05;
  auto engine =
      testing::MakeEngine(SourcePath("models/sympow-tiny"), "cuda", {.max_batch_tokens = 65536});
  ASSERT_NE(engine, nullptr);
  const testing::LongContextLoss loss =
      testing::LongContextLosses(SourcePath(""), *engine, kPrefix, kShort, kScored);
  Report("bundled model, held-out loss after 1M tokens (nats)", loss.after_long);
  Report("bundled model, held-out loss after 1,024 tokens (nats)", loss.after_short);
  EXPECT_LE(loss.after_long, loss.after_short + kLongContextMarginNats);
}

}  // namespace
}  // namespace sympow
