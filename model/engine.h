// The Engine: loads a model onto a backend and runs sessions (chunked prefill, batched decode),
// keeping each session's state slot and position. Not thread-safe: one caller drives it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/backend.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/device_weights.h"
#include "model/forward.h"
#include "model/prefix_key.h"
#include "model/state_tiers.h"

namespace sympow {

struct EngineOptions {
  // Prefill chunk (attention form inside, state form across); 0 takes config.chunk_size.
  int64_t chunk_size = 0;
  // Rows per forward pass when prefilling; longer inputs run in several passes.
  int64_t max_batch_tokens = 2048;
  // Where states go when every backend slot is taken (by default nowhere: RESOURCE_EXHAUSTED).
  StateTierOptions state_tiers = {};
  // Decode steps replayed from recordings (CUDA graphs) where the backend records them.
  bool record_decode_steps = true;
  // Passes of up to this many rows compute q, k, v and the gate in one GEMM (ModelForward).
  int64_t stacked_projection_rows = kDefaultStackedProjectionRows;
};

struct DecodeInput {
  SessionId session = 0;
  int32_t token = 0;
};

enum class LogitsFor { kLastToken, kEveryToken };

// Told after each forward pass of a prefill: tokens done so far and the total.
using PrefillProgress = std::function<void(int64_t done, int64_t total)>;

// A model directory opened and validated: config, checkpoint and bound tensors.
struct LoadedModel {
  ModelConfig config;
  Checkpoint checkpoint;
  ModelTensors tensors;
};
absl::StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& dir);

class Engine {
 public:
  // Uploads the model's weights to `backend`; `model` may be released afterwards.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const LoadedModel& model,
                                                        std::unique_ptr<Backend> backend,
                                                        EngineOptions options);

  const ModelConfig& config() const { return config_; }
  Backend& backend() { return *backend_; }
  int64_t chunk_size() const { return chunk_size_; }

  absl::StatusOr<SessionId> CreateSession();
  // A new session with a copy of `source`'s state and position.
  absl::StatusOr<SessionId> ForkSession(SessionId source);
  absl::Status DeleteSession(SessionId session);
  // Tokens the session has consumed.
  absl::StatusOr<int64_t> SessionLength(SessionId session) const;

  // Appends `tokens` to the session and returns the logits after the last one (vocab floats)
  // or after each one (tokens × vocab).
  absl::StatusOr<std::vector<float>> Prefill(SessionId session, std::span<const int32_t> tokens,
                                             LogitsFor which = LogitsFor::kLastToken,
                                             const PrefillProgress& progress = nullptr);
  // Appends one token to each of several distinct sessions, all in one batch; row i of the
  // result (vocab floats) is the next-token logits of inputs[i].session.
  absl::StatusOr<std::vector<float>> Decode(std::span<const DecodeInput> inputs);
  // One forward pass over parts of several distinct sessions: prompt chunks and single decode
  // tokens alike, as a serving step mixes them. A part with `sampling` gets the token after its
  // last one sampled on the backend, so only token ids and log-probs leave the device.
  struct StepInput {
    SessionId session = 0;
    std::span<const int32_t> tokens;
    const RowSampling* sampling = nullptr;  // null: the part only advances the session
    bool host_logits = false;  // with sampling: also that row's logits on the host (top log-probs)
  };
  struct StepResult {
    std::vector<SampledToken> tokens;  // tokens[i] for each input with sampling
    std::vector<float> logits;         // [inputs with host_logits × vocab], in input order
  };
  absl::StatusOr<StepResult> Step(std::span<const StepInput> inputs);

  // The session's raw state (StateLayout bytes), e.g. for comparing or persisting it.
  absl::StatusOr<std::vector<std::byte>> ReadState(SessionId session);
  // The same into `to` (StateLayout::Bytes() long), e.g. pinned host memory from the backend.
  absl::Status ReadState(SessionId session, std::span<std::byte> to);
  // A new session holding `state` (as ReadState gave it) after `length` tokens.
  absl::StatusOr<SessionId> RestoreSession(std::span<const std::byte> state, int64_t length);

  // The key of every token the session has consumed (model/prefix_key.h).
  absl::StatusOr<PrefixKey> SessionPrefix(SessionId session) const;
  // Puts a cached state (the state after the tokens `key` stands for) into an empty session.
  absl::Status StartFromPrefix(SessionId session, std::span<const std::byte> state, PrefixKey key);

  // Where the session's state is now: a backend slot, host memory or a spill file.
  absl::StatusOr<StateTier> SessionTier(SessionId session) const;
  StateTierCounts TierCounts() const { return tiers_.Counts(); }
  // Marks a session as having a running request: its state keeps its slot until unmarked.
  void SetInUse(SessionId session, bool in_use) { tiers_.SetInUse(session, in_use); }

 private:
  struct Session {
    int64_t length = 0;
    PrefixKey prefix;
    bool prefix_known = true;
    int64_t buffered = 0;  // tokens in the state's decode buffers (the same in every layer)
  };

  Engine(const ModelConfig& config, std::unique_ptr<Backend> backend, EngineOptions options);
  absl::StatusOr<Session*> Find(SessionId session);
  absl::Status CheckTokens(std::span<const int32_t> tokens, absl::string_view field) const;
  // Folds the decode buffers of the sessions whose slots are given, and notes them empty.
  void Fold(std::span<const std::pair<Session*, int32_t>> sessions);
  // Whether the session's next decoded token fills its buffers and the step folds them.
  bool FoldsInStep(const Session& session) const;
  // After a step: notes the decoded token in each session's buffers and folds those it filled,
  // unless the step did (FoldsInStep).
  void CountDecoded(std::span<const std::pair<Session*, int32_t>> sessions);
  // Checks the inputs, gives every session a slot, runs one forward pass and advances the
  // sessions; the logits of the inputs with logits_for[i] (in order) stay in backend memory.
  // `tokens_field` names an input's tokens in errors.
  absl::StatusOr<MatrixView> RunStep(std::span<const StepInput> inputs,
                                     const std::vector<bool>& logits_for,
                                     absl::string_view tokens_field);

  ModelConfig config_;
  std::unique_ptr<Backend> backend_;
  EngineOptions options_;
  int64_t chunk_size_;
  DeviceWeights weights_;
  std::unique_ptr<ModelForward> forward_;
  std::map<SessionId, Session> sessions_;
  StateTiers tiers_;
  SessionId next_session_ = 1;
};

}  // namespace sympow
