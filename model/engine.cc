#include "model/engine.h"

#include <filesystem>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sympow {

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& dir) {
  if (!std::filesystem::is_directory(dir)) {
    return absl::NotFoundError(absl::StrCat(dir, ": not a model directory"));
  }
  absl::StatusOr<ModelConfig> config =
      LoadModelConfig((std::filesystem::path(dir) / "config.json").string());
  if (!config.ok()) return config.status();
  absl::StatusOr<Checkpoint> checkpoint = Checkpoint::Open(dir);
  if (!checkpoint.ok()) return checkpoint.status();
  auto model = std::make_unique<LoadedModel>(LoadedModel{*config, std::move(*checkpoint), {}});
  absl::StatusOr<ModelTensors> tensors = BindModelTensors(model->config, model->checkpoint);
  if (!tensors.ok()) {
    return absl::Status(tensors.status().code(),
                        absl::StrCat(dir, ": ", tensors.status().message()));
  }
  model->tensors = std::move(*tensors);
  return model;
}

Engine::Engine(const ModelConfig& config, std::unique_ptr<Backend> backend, EngineOptions options)
    : config_(config),
      backend_(std::move(backend)),
      options_(options),
      chunk_size_(options.chunk_size > 0 ? options.chunk_size : config.chunk_size),
      tiers_(*backend_, options.state_tiers) {}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const LoadedModel& model,
                                                       std::unique_ptr<Backend> backend,
                                                       EngineOptions options) {
  if (options.chunk_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk_size must be >= 0, got ", options.chunk_size));
  }
  if (options.max_batch_tokens <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch_tokens must be positive, got ", options.max_batch_tokens));
  }
  const StateLayout expected = StateLayout::ForConfig(model.config);
  const StateLayout& layout = backend->state_layout();
  if (layout.Bytes() != expected.Bytes() || layout.expanded_dim != expected.expanded_dim ||
      layout.num_layers != expected.num_layers || layout.num_kv_heads != expected.num_kv_heads) {
    return absl::InvalidArgumentError(
        absl::StrCat("backend '", backend->name(), "' was made for another model: its states are ",
                     layout.Bytes(), " bytes, this model's ", expected.Bytes()));
  }
  std::unique_ptr<Engine> engine(new Engine(model.config, std::move(backend), options));
  engine->weights_ =
      UploadWeights(model.tensors, model.config.tie_word_embeddings, *engine->backend_);
  engine->forward_ = std::make_unique<ModelForward>(
      engine->config_, engine->weights_, *engine->backend_, engine->chunk_size_,
      options.record_decode_steps, options.stacked_projection_rows);
  return engine;
}

absl::StatusOr<Engine::Session*> Engine::Find(SessionId session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end())
    return absl::NotFoundError(absl::StrCat("session ", session, " does not exist"));
  return &it->second;
}

absl::Status Engine::CheckTokens(std::span<const int32_t> tokens, absl::string_view field) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "] = ", tokens[i],
                                                     " is outside the vocabulary [0, ",
                                                     config_.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<SessionId> Engine::CreateSession() {
  const SessionId id = next_session_;
  if (absl::Status added = tiers_.Add(id); !added.ok()) return added;
  ++next_session_;
  sessions_[id] = Session{};
  return id;
}

absl::StatusOr<SessionId> Engine::ForkSession(SessionId source) {
  absl::StatusOr<Session*> original = Find(source);
  if (!original.ok()) return original.status();
  const Session copy = **original;
  const SessionId fork = next_session_;
  const SessionId both[] = {source, fork};
  if (tiers_.TierOf(source) == StateTier::kDevice && tiers_.Add(fork, both).ok()) {
    // Both in slots: a device-side copy.
    backend_->CopyStateSlot(tiers_.Slot(source, both).value(), tiers_.Slot(fork, both).value());
  } else {
    // Through the bytes, so the source may give up its slot to the fork.
    std::vector<std::byte> state(backend_->state_layout().Bytes());
    if (absl::Status read = tiers_.Read(source, state); !read.ok()) return read;
    if (absl::Status added = tiers_.Add(fork); !added.ok()) return added;
    backend_->WriteStateSlot(tiers_.Slot(fork).value(), state);
  }
  ++next_session_;
  sessions_[fork] = copy;
  return fork;
}

absl::Status Engine::DeleteSession(SessionId session) {
  absl::StatusOr<Session*> found = Find(session);
  if (!found.ok()) return found.status();
  tiers_.Remove(session);
  sessions_.erase(session);
  return absl::OkStatus();
}

absl::StatusOr<PrefixKey> Engine::SessionPrefix(SessionId session) const {
  auto it = sessions_.find(session);
  if (it == sessions_.end())
    return absl::NotFoundError(absl::StrCat("session ", session, " does not exist"));
  if (!it->second.prefix_known) {
    return absl::FailedPreconditionError(
        absl::StrCat("session ", session, " was restored from a state: its tokens are unknown"));
  }
  return it->second.prefix;
}

absl::Status Engine::StartFromPrefix(SessionId session, std::span<const std::byte> state,
                                     PrefixKey key) {
  absl::StatusOr<Session*> found = Find(session);
  if (!found.ok()) return found.status();
  if ((*found)->length != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("session ", session, " already holds ", (*found)->length, " tokens"));
  }
  absl::StatusOr<int64_t> buffered = BufferedTokens(backend_->state_layout(), state);
  if (!buffered.ok()) return buffered.status();
  const SessionId kept[] = {session};
  absl::StatusOr<int32_t> slot = tiers_.Slot(session, kept);
  if (!slot.ok()) return slot.status();
  backend_->WriteStateSlot(*slot, state);
  (*found)->buffered = *buffered;
  (*found)->length = key.length;
  (*found)->prefix = key;
  (*found)->prefix_known = true;
  return absl::OkStatus();
}

absl::StatusOr<StateTier> Engine::SessionTier(SessionId session) const {
  if (!sessions_.contains(session))
    return absl::NotFoundError(absl::StrCat("session ", session, " does not exist"));
  return tiers_.TierOf(session);
}

absl::StatusOr<int64_t> Engine::SessionLength(SessionId session) const {
  auto it = sessions_.find(session);
  if (it == sessions_.end())
    return absl::NotFoundError(absl::StrCat("session ", session, " does not exist"));
  return it->second.length;
}

absl::StatusOr<std::vector<float>> Engine::Prefill(SessionId session,
                                                   std::span<const int32_t> tokens, LogitsFor which,
                                                   const PrefillProgress& progress) {
  absl::StatusOr<Session*> found = Find(session);
  if (!found.ok()) return found.status();
  if (tokens.empty()) return absl::InvalidArgumentError("tokens is empty: nothing to prefill");
  if (absl::Status status = CheckTokens(tokens, "tokens"); !status.ok()) return status;
  Session& s = **found;
  const SessionId kept[] = {session};
  absl::StatusOr<int32_t> slot = tiers_.Slot(session, kept);
  if (!slot.ok()) return slot.status();
  const std::pair<Session*, int32_t> folded[] = {{&s, *slot}};
  const int64_t vocab = config_.vocab_size;
  const int64_t total = static_cast<int64_t>(tokens.size());
  std::vector<float> logits((which == LogitsFor::kEveryToken ? total : 1) * vocab);
  for (int64_t start = 0; start < total; start += options_.max_batch_tokens) {
    const int64_t count = std::min(options_.max_batch_tokens, total - start);
    ForwardBatch batch;
    batch.tokens.assign(tokens.begin() + start, tokens.begin() + start + count);
    for (int64_t i = 0; i < count; ++i) batch.positions.push_back(s.length + i);
    batch.segments.push_back({0, count, *slot});
    float* out = logits.data();
    if (which == LogitsFor::kEveryToken) {
      for (int64_t i = 0; i < count; ++i) batch.logit_rows.push_back(i);
      out += start * vocab;
    } else if (start + count == total) {
      batch.logit_rows.push_back(count - 1);
    }
    // A pass of one token is a decode step (its token joins the decode buffers); a longer one
    // continues the state with its buffers folded.
    if (count > 1) Fold(folded);
    if (count == 1) batch.segments[0].folds_buffers = FoldsInStep(s);
    forward_->Run(batch, out);
    if (count == 1) CountDecoded(folded);
    s.length += count;
    s.prefix = s.prefix.Extended(std::span(batch.tokens));
    if (progress) progress(start + count, total);
  }
  return logits;
}

absl::StatusOr<MatrixView> Engine::RunStep(std::span<const StepInput> inputs,
                                           const std::vector<bool>& logits_for,
                                           absl::string_view tokens_field) {
  std::set<SessionId> seen;
  std::vector<SessionId> batch_sessions;
  std::vector<Session*> parts;
  for (size_t i = 0; i < inputs.size(); ++i) {
    absl::StatusOr<Session*> found = Find(inputs[i].session);
    if (!found.ok()) return found.status();
    if (!seen.insert(inputs[i].session).second) {
      return absl::InvalidArgumentError(absl::StrCat("inputs[", i, "]: session ", inputs[i].session,
                                                     " appears twice in one batch"));
    }
    const std::string field = absl::StrCat("inputs[", i, "].", tokens_field);
    if (inputs[i].tokens.empty())
      return absl::InvalidArgumentError(absl::StrCat(field, " is empty"));
    if (absl::Status status = CheckTokens(inputs[i].tokens, field); !status.ok()) return status;
    batch_sessions.push_back(inputs[i].session);
    parts.push_back(*found);
  }
  ForwardBatch batch;
  std::vector<std::pair<Session*, int32_t>> prompts, decoded;  // with their slots
  for (size_t i = 0; i < inputs.size(); ++i) {
    // Every session of the batch needs a slot at once: none may give its slot to another.
    absl::StatusOr<int32_t> slot = tiers_.Slot(inputs[i].session, batch_sessions);
    if (!slot.ok()) return slot.status();
    (inputs[i].tokens.size() > 1 ? prompts : decoded).push_back({parts[i], *slot});
    const int64_t first = static_cast<int64_t>(batch.tokens.size());
    const int64_t count = static_cast<int64_t>(inputs[i].tokens.size());
    batch.tokens.insert(batch.tokens.end(), inputs[i].tokens.begin(), inputs[i].tokens.end());
    for (int64_t t = 0; t < count; ++t) batch.positions.push_back(parts[i]->length + t);
    batch.segments.push_back({first, count, *slot, count == 1 && FoldsInStep(*parts[i])});
    if (logits_for[i]) batch.logit_rows.push_back(first + count - 1);
  }
  if (inputs.empty()) return MatrixView{nullptr, DType::kF32, 0, config_.vocab_size};
  Fold(prompts);  // a prompt continues a state whose buffers are folded
  const MatrixView logits = forward_->Run(batch);
  for (size_t i = 0; i < inputs.size(); ++i) {
    parts[i]->length += static_cast<int64_t>(inputs[i].tokens.size());
    parts[i]->prefix = parts[i]->prefix.Extended(inputs[i].tokens);
  }
  CountDecoded(decoded);
  return logits;
}

bool Engine::FoldsInStep(const Session& session) const {
  return backend_->FoldsFullBuffersInDecode() &&
         session.buffered + 1 == backend_->state_layout().buffer_tokens;
}

void Engine::CountDecoded(std::span<const std::pair<Session*, int32_t>> sessions) {
  // A decoded token joined its state's buffers. Full ones were folded in the step where the
  // backend does that (FoldsInStep); otherwise they are folded now, before the next step.
  const int64_t capacity = backend_->state_layout().buffer_tokens;
  std::vector<std::pair<Session*, int32_t>> full;
  for (const auto& part : sessions) {
    if (++part.first->buffered < capacity) continue;
    if (backend_->FoldsFullBuffersInDecode()) {
      part.first->buffered = 0;
    } else {
      full.push_back(part);
    }
  }
  Fold(full);
}

void Engine::Fold(std::span<const std::pair<Session*, int32_t>> sessions) {
  std::vector<BufferedSession> buffered;
  for (const auto& [session, slot] : sessions) {
    if (session->buffered == 0) continue;
    buffered.push_back({slot, session->buffered});
    session->buffered = 0;
  }
  if (!buffered.empty()) backend_->FoldDecodeBuffers(buffered);
}

absl::StatusOr<std::vector<float>> Engine::Decode(std::span<const DecodeInput> inputs) {
  std::vector<StepInput> parts;
  for (const DecodeInput& input : inputs) parts.push_back({input.session, {&input.token, 1}});
  absl::StatusOr<MatrixView> device_logits =
      RunStep(parts, std::vector<bool>(inputs.size(), true), "token");
  if (!device_logits.ok()) return device_logits.status();
  std::vector<float> logits(inputs.size() * config_.vocab_size);
  if (!inputs.empty()) backend_->CopyToHost(*device_logits, logits.data());
  return logits;
}

absl::StatusOr<Engine::StepResult> Engine::Step(std::span<const StepInput> inputs) {
  std::vector<bool> logits_for;
  std::vector<RowSampling> sampling;
  for (const StepInput& input : inputs) {
    logits_for.push_back(input.sampling != nullptr);
    if (input.sampling != nullptr) sampling.push_back(*input.sampling);
  }
  absl::StatusOr<MatrixView> logits = RunStep(inputs, logits_for, "tokens");
  if (!logits.ok()) return logits.status();
  StepResult result;
  result.tokens.resize(inputs.size());
  if (sampling.empty()) return result;
  std::vector<SampledToken> sampled(sampling.size());
  backend_->Sample(*logits, sampling, sampled);
  const int64_t vocab = config_.vocab_size;
  int64_t row = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].sampling == nullptr) continue;
    result.tokens[i] = sampled[row];
    if (inputs[i].host_logits) {
      result.logits.resize(result.logits.size() + vocab);
      backend_->CopyToHost(logits->Rows(row, 1),
                           result.logits.data() + result.logits.size() - vocab);
    }
    ++row;
  }
  return result;
}

absl::StatusOr<SessionId> Engine::RestoreSession(std::span<const std::byte> state, int64_t length) {
  absl::StatusOr<int64_t> buffered = BufferedTokens(backend_->state_layout(), state);
  if (!buffered.ok()) return buffered.status();
  if (length < 0)
    return absl::InvalidArgumentError(absl::StrCat("length ", length, " is negative"));
  absl::StatusOr<SessionId> session = CreateSession();
  if (!session.ok()) return session.status();
  backend_->WriteStateSlot(tiers_.Slot(*session).value(), state);
  sessions_[*session].buffered = *buffered;
  sessions_[*session].length = length;
  sessions_[*session].prefix_known = false;  // a snapshot carries the state, not the tokens
  return session;
}

absl::StatusOr<std::vector<std::byte>> Engine::ReadState(SessionId session) {
  std::vector<std::byte> bytes(backend_->state_layout().Bytes());
  absl::Status read = ReadState(session, bytes);
  if (!read.ok()) return read;
  return bytes;
}

absl::Status Engine::ReadState(SessionId session, std::span<std::byte> to) {
  absl::StatusOr<Session*> found = Find(session);
  if (!found.ok()) return found.status();
  return tiers_.Read(session, to);
}

}  // namespace sympow
