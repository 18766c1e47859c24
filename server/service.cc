#include "server/service.h"

#include <atomic>
#include <filesystem>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "model/config.h"
#include "model/tokenizer/utf8.h"
#include "server/snapshot.h"
#include "server/status_mapping.h"
#include "spdlog/spdlog.h"

namespace sympow::server {
namespace {

// Lease lifetimes a session may sit idle on a replica before the replica lets it go.
constexpr int kIdleRelease = 3;

using google::protobuf::util::TimeUtil;

constexpr int32_t kMaxTopLogprobs = 20;
constexpr int64_t kDefaultPageSize = 100;
constexpr int64_t kMaxPageSize = 1000;
// How often a waiting handler checks whether its client is still there.
constexpr absl::Duration kClientPoll = absl::Milliseconds(20);

// The client's x-request-id metadata, or a fresh id, to tie a call's log lines together.
std::string RequestId(const grpc::ServerContext& context) {
  static std::atomic<uint64_t> counter{0};
  const auto& metadata = context.client_metadata();
  auto given = metadata.find("x-request-id");
  if (given != metadata.end())
    return std::string(given->second.data(), std::min<size_t>(given->second.size(), 64));
  return absl::StrCat("r-", ++counter);
}

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// A client-chosen session id: it names snapshot files, so only a safe, short alphabet.
absl::Status CheckSessionId(const std::string& id) {
  if (id.size() > 64) return Invalid("session_id", "is longer than 64 characters");
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return Invalid("session_id", "may hold only A-Z a-z 0-9 . _ -");
    }
  }
  if (id == "." || id == "..") return Invalid("session_id", "may not be . or ..");
  return absl::OkStatus();
}

absl::Status CheckPriority(int32_t priority) {
  constexpr int32_t kMaxPriority = 100;
  if (priority < -kMaxPriority || priority > kMaxPriority) {
    return Invalid("priority",
                   absl::StrCat(priority, " is outside [-", kMaxPriority, ", ", kMaxPriority, "]"));
  }
  return absl::OkStatus();
}

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kCancelled:
      return v1::FINISH_REASON_CANCELLED;
    case FinishReason::kShutdown:
      return v1::FINISH_REASON_SHUTDOWN;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

absl::Status ToSampling(const v1::GenerateRequest& request, int64_t vocab, SamplingParams* out) {
  const v1::SamplingParams& s = request.sampling();
  if (s.has_temperature()) out->temperature = s.temperature();
  out->top_k = s.top_k();
  if (s.has_top_p()) out->top_p = s.top_p();
  out->min_p = s.min_p();
  if (s.has_repetition_penalty()) out->repetition_penalty = s.repetition_penalty();
  out->seed = s.has_seed() ? s.seed() : std::random_device{}();
  out->stop_tokens.assign(request.stop_token_ids().begin(), request.stop_token_ids().end());
  absl::Status valid = ValidateSamplingParams(*out, vocab);
  if (!valid.ok()) {
    const bool about_stops = absl::StrContains(valid.message(), "stop_tokens");
    return Invalid(about_stops ? "stop_token_ids" : "sampling", valid.message());
  }
  return absl::OkStatus();
}

}  // namespace

SympowService::SympowService(const ModelConfig& config, int64_t state_bytes,
                             std::string backend_name, const Tokenizer& tokenizer,
                             EngineWorker& worker, ServerMetrics& metrics, ServiceLimits limits)
    : config_(config),
      state_bytes_(state_bytes),
      backend_name_(std::move(backend_name)),
      tokenizer_(tokenizer),
      worker_(worker),
      metrics_(metrics),
      limits_(std::move(limits)),
      sessions_(limits_.max_sessions) {
  UpdateSessionGauges();
  if (!limits_.replica_id.empty() && !limits_.state_dir.empty()) {
    leases_ =
        std::make_unique<SessionLeases>(limits_.state_dir, limits_.replica_id, limits_.lease_ttl);
    renewer_ = std::thread([this] { RenewLeases(); });
  }
}

SympowService::~SympowService() {
  if (!leases_) return;
  stop_renewing_.Notify();
  renewer_.join();
  bool more = false;
  for (const SessionRecord& record : sessions_.List("", INT64_MAX, &more)) {
    leases_->Release(record.id);  // the others may take these over at once
  }
}

void SympowService::RenewLeases() {
  while (!stop_renewing_.WaitForNotificationWithTimeout(leases_->ttl() / 3)) {
    bool more = false;
    for (const SessionRecord& record : sessions_.List("", INT64_MAX, &more)) {
      // An idle session is let go (its snapshot is current), so that the replica the router now
      // sends it to can take it, e.g. its own replica back after a restart.
      if (!record.busy && absl::Now() - record.last_used > kIdleRelease * leases_->ttl()) {
        if (sessions_.Remove(record.id).ok()) {
          EndSession(record);
          leases_->Release(record.id);
          spdlog::info("session {} idle: let go (its snapshot stays for any replica)", record.id);
        }
        continue;
      }
      if (absl::Status renewed = leases_->Acquire(record.id); !renewed.ok()) {
        spdlog::warn("session {} dropped here: {}", record.id, renewed.ToString());
        if (sessions_.Remove(record.id, /*even_if_busy=*/true).ok()) EndSession(record);
      }
    }
  }
}

absl::Status SympowService::Adopt(const std::string& id) {
  absl::MutexLock lock(&adopting_);
  if (sessions_.Get(id).ok()) return absl::OkStatus();  // adopted meanwhile
  const std::string path = SnapshotPath(limits_.state_dir, id);
  if (!std::filesystem::exists(path)) {
    return absl::NotFoundError(absl::StrCat("session_id '", id, "' does not exist"));
  }
  if (absl::Status leased = leases_->Acquire(id); !leased.ok()) return leased;
  absl::Status restored = RestoreSnapshot(path);
  if (!restored.ok()) {
    leases_->Release(id);
    return restored;
  }
  spdlog::info("took session {} over from its snapshot", id);
  return absl::OkStatus();
}

absl::StatusOr<SessionRecord> SympowService::Lookup(const std::string& id) {
  absl::StatusOr<SessionRecord> record = sessions_.Get(id);
  if (record.ok() || !leases_ || !absl::IsNotFound(record.status())) return record;
  if (absl::Status adopted = Adopt(id); !adopted.ok()) return adopted;
  return sessions_.Get(id);
}

absl::StatusOr<SessionRecord> SympowService::AcquireForCall(const std::string& id) {
  absl::StatusOr<SessionRecord> record = sessions_.Acquire(id);
  if (record.ok() || !leases_ || !absl::IsNotFound(record.status())) return record;
  if (absl::Status adopted = Adopt(id); !adopted.ok()) return adopted;
  return sessions_.Acquire(id);
}

absl::StatusOr<std::vector<int32_t>> SympowService::ToTokens(const v1::Input& input,
                                                             absl::string_view field) const {
  std::vector<int32_t> ids;
  if (input.has_token_ids()) {
    const auto& given = input.token_ids().ids();
    for (int i = 0; i < given.size(); ++i) {
      if (given[i] < 0 || given[i] >= config_.vocab_size) {
        return Invalid(
            absl::StrCat(field, ".token_ids.ids[", i, "]"),
            absl::StrCat(given[i], " is outside the vocabulary [0, ", config_.vocab_size, ")"));
      }
    }
    ids.assign(given.begin(), given.end());
  } else {
    ids = tokenizer_.Encode(input.text());
  }
  if (static_cast<int64_t>(ids.size()) > limits_.max_prompt_tokens) {
    return Invalid(
        field,
        absl::StrCat(ids.size(), " tokens exceed --max_prompt_tokens=", limits_.max_prompt_tokens));
  }
  return ids;
}

absl::StatusOr<SessionRecord> SympowService::NewSession(bool ephemeral, const std::string& id) {
  if (absl::Status capacity = sessions_.CheckCapacity(); !capacity.ok()) return capacity;
  absl::StatusOr<SessionId> engine_session = absl::InternalError("unset");
  worker_.Run([&](Engine& engine) { engine_session = engine.CreateSession(); });
  if (!engine_session.ok()) return engine_session.status();
  absl::StatusOr<SessionRecord> record = sessions_.Add(*engine_session, ephemeral, id);
  if (!record.ok()) {
    worker_.Run([&](Engine& engine) { engine.DeleteSession(*engine_session).IgnoreError(); });
    return record.status();
  }
  UpdateSessionGauges();
  return record;
}

void SympowService::Discard(const SessionRecord& record) {
  sessions_.Remove(record.id, /*even_if_busy=*/true).IgnoreError();
  EndSession(record);
}

void SympowService::EndSession(const SessionRecord& record) {
  worker_.Run([&](Engine& engine) { engine.DeleteSession(record.engine_session).IgnoreError(); });
  UpdateSessionGauges();
}

absl::Status SympowService::Persist(const SessionRecord& record) {
  if (limits_.state_dir.empty() || record.ephemeral) return absl::OkStatus();
  Snapshot snapshot;
  snapshot.session_id = record.id;
  snapshot.model_fingerprint = limits_.model_fingerprint;
  snapshot.state_dtype = std::string(StateDTypeName(config_.state_dtype));
  snapshot.created = record.created;
  snapshot.saved = absl::Now();
  absl::Status read = absl::OkStatus();
  worker_.Run([&](Engine& engine) {
    absl::StatusOr<std::vector<std::byte>> state = engine.ReadState(record.engine_session);
    read = state.status();
    if (state.ok()) snapshot.state = std::move(*state);
    snapshot.token_count = engine.SessionLength(record.engine_session).value_or(0);
  });
  absl::Status status = read.ok() ? WriteSnapshot(limits_.state_dir, snapshot) : read;
  if (!status.ok()) {
    spdlog::error("session {} not persisted (its previous snapshot stays): {}", record.id,
                  status.ToString());
    return absl::Status(status.code(), absl::StrCat("session ", record.id,
                                                    " was not persisted: ", status.message()));
  }
  return absl::OkStatus();
}

int64_t SympowService::RestoreSessions() {
  if (limits_.state_dir.empty()) return 0;
  int64_t restored = 0;
  for (const std::string& path : ListSnapshots(limits_.state_dir)) {
    if (absl::Status capacity = sessions_.CheckCapacity(); !capacity.ok()) {
      spdlog::warn("not restoring {} and later snapshots: {}", path, capacity.ToString());
      break;
    }
    if (absl::Status status = RestoreSnapshot(path); !status.ok()) {
      spdlog::warn("skipping snapshot: {}", status.ToString());
      continue;
    }
    ++restored;
  }
  return restored;
}

absl::Status SympowService::RestoreSnapshot(const std::string& path) {
  absl::StatusOr<Snapshot> snapshot = ReadSnapshot(path, limits_.model_fingerprint, state_bytes_);
  if (!snapshot.ok()) return snapshot.status();
  if (absl::Status capacity = sessions_.CheckCapacity(); !capacity.ok()) return capacity;
  absl::StatusOr<SessionId> session = absl::InternalError("unset");
  worker_.Run([&](Engine& engine) {
    session = engine.RestoreSession(snapshot->state, snapshot->token_count);
  });
  if (!session.ok()) {
    return absl::Status(session.status().code(),
                        absl::StrCat(path, ": ", session.status().message()));
  }
  sessions_.AddRestored(
      {snapshot->session_id, *session, snapshot->created, snapshot->saved, false, false});
  UpdateSessionGauges();
  return absl::OkStatus();
}

void SympowService::UpdateSessionGauges() {
  const int64_t count = sessions_.size();
  metrics_.Sessions(count * state_bytes_, limits_.max_sessions * state_bytes_);
}

RequestEvent SympowService::Stream(grpc::ServerContext* context,
                                   const std::shared_ptr<Request>& request,
                                   const std::function<bool(const RequestEvent&)>& on_event) {
  while (true) {
    std::optional<RequestEvent> event = request->events.Pop(kClientPoll);
    if (!event) {
      if (context->IsCancelled()) request->cancelled = true;
      continue;
    }
    if (event->finished) return *event;
    if (!request->cancelled && !on_event(*event)) request->cancelled = true;  // the client is gone
  }
}

grpc::Status SympowService::Generate(grpc::ServerContext* context,
                                     const v1::GenerateRequest* request,
                                     grpc::ServerWriter<v1::GenerateResponse>* writer) {
  const std::string request_id = RequestId(*context);
  auto fail = [&](const absl::Status& status) {
    spdlog::warn("[{}] Generate refused: {}", request_id, status.ToString());
    return ToGrpc(status);
  };
  absl::StatusOr<std::vector<int32_t>> prompt = ToTokens(request->input(), "input");
  if (!prompt.ok()) return fail(prompt.status());
  if (prompt->empty())
    return fail(Invalid("input", "is empty: give text or token_ids to start from"));
  if (request->max_new_tokens() < 0 || request->max_new_tokens() > limits_.max_new_tokens) {
    return fail(Invalid("max_new_tokens",
                        absl::StrCat(request->max_new_tokens(), " is outside [0, --max_new_tokens=",
                                     limits_.max_new_tokens, "]")));
  }
  if (request->top_logprobs() < 0 || request->top_logprobs() > kMaxTopLogprobs) {
    return fail(Invalid("top_logprobs", absl::StrCat(request->top_logprobs(), " is outside [0, ",
                                                     kMaxTopLogprobs, "]")));
  }
  for (int i = 0; i < request->stop_size(); ++i) {
    if (request->stop(i).empty()) return fail(Invalid(absl::StrCat("stop[", i, "]"), "is empty"));
  }
  if (absl::Status priority = CheckPriority(request->priority()); !priority.ok())
    return fail(priority);
  auto job = std::make_shared<Request>();
  job->priority = request->priority();
  if (absl::Status status = ToSampling(*request, config_.vocab_size, &job->sampling);
      !status.ok()) {
    return fail(status);
  }
  if (config_.eos_token_id && !request->ignore_eos()) {
    job->sampling.stop_tokens.push_back(static_cast<int32_t>(*config_.eos_token_id));
  }

  const bool ephemeral = request->session_id().empty();
  absl::StatusOr<SessionRecord> session =
      ephemeral ? NewSession(true) : AcquireForCall(request->session_id());
  if (!session.ok()) return fail(session.status());
  job->id = request_id;
  job->session = session->engine_session;
  job->ephemeral = ephemeral;
  job->prompt = std::move(*prompt);
  job->max_new_tokens =
      request->max_new_tokens() > 0 ? request->max_new_tokens() : limits_.default_max_new_tokens;
  job->stop_strings.assign(request->stop().begin(), request->stop().end());
  job->logprobs = request->logprobs();
  job->top_logprobs = request->logprobs() ? request->top_logprobs() : 0;
  const int64_t prompt_tokens = static_cast<int64_t>(job->prompt.size());
  spdlog::info("[{}] Generate on {}: {} prompt tokens, up to {} new", request_id, session->id,
               prompt_tokens, job->max_new_tokens);

  grpc::Status result = grpc::Status::OK;
  if (!ephemeral) sessions_.SetRunning(session->id, job);
  if (absl::Status queued = worker_.Submit(job); !queued.ok()) {
    result = fail(queued);
  } else {
    int64_t generated = 0;
    RequestEvent last = Stream(context, job, [&](const RequestEvent& event) {
      v1::GenerateResponse response;
      v1::Delta* delta = response.mutable_delta();
      delta->set_text(ToValidUtf8(event.text));
      for (const TokenOutput& token : event.tokens) {
        v1::GeneratedToken* out = delta->add_tokens();
        out->set_token_id(token.token);
        if (job->logprobs) out->set_logprob(token.logprob);
        for (const auto& [id, logprob] : token.top_logprobs) {
          v1::TokenLogprob* alternative = out->add_top_logprobs();
          alternative->set_token_id(id);
          alternative->set_logprob(logprob);
          alternative->set_text(ToValidUtf8(tokenizer_.TokenBytes(id)));
        }
        ++generated;
      }
      return writer->Write(response);
    });
    const bool deleted = !ephemeral && sessions_.Deleting(session->id);
    const absl::Status persisted = deleted ? absl::OkStatus() : Persist(*session);
    if (deleted) {
      result = DeletedWhileRunning(session->id);
    } else if (!last.error.ok()) {
      result = fail(last.error);
    } else if (!persisted.ok()) {
      result = fail(persisted);
    } else if (context->IsCancelled()) {
      result = grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the call");
    } else {
      v1::GenerateResponse response;
      v1::Finished* finished = response.mutable_finished();
      if (!last.text.empty()) {  // text held back to the end (a character or stop-string prefix)
        v1::GenerateResponse tail;
        tail.mutable_delta()->set_text(ToValidUtf8(last.text));
        writer->Write(tail);
      }
      finished->set_reason(ToProto(last.reason));
      finished->set_session_id(session->id);
      v1::Usage* usage = finished->mutable_usage();
      usage->set_prompt_tokens(static_cast<int32_t>(prompt_tokens));
      usage->set_generated_tokens(static_cast<int32_t>(generated));
      usage->set_session_tokens(last.session_tokens);
      if (last.first_token_time != absl::InfinitePast()) {
        usage->set_time_to_first_token_s(
            absl::ToDoubleSeconds(last.first_token_time - job->arrival));
      }
      usage->set_total_time_s(absl::ToDoubleSeconds(absl::Now() - job->arrival));
      writer->Write(response);
    }
    spdlog::info("[{}] done: {} tokens generated, {}, session holds {}", request_id, generated,
                 result.ok() ? v1::FinishReason_Name(ToProto(last.reason)) : result.error_message(),
                 last.session_tokens);
  }
  if (ephemeral) {
    Discard(*session);
  } else if (std::optional<SessionRecord> gone = sessions_.EndCall(session->id)) {
    Forget(*gone);
  }
  return result;
}

grpc::Status SympowService::Append(grpc::ServerContext* context, const v1::AppendRequest* request,
                                   grpc::ServerWriter<v1::AppendResponse>* writer) {
  absl::StatusOr<std::vector<int32_t>> tokens = ToTokens(request->input(), "input");
  if (!tokens.ok()) return ToGrpc(tokens.status());
  if (tokens->empty()) return ToGrpc(Invalid("input", "is empty: nothing to append"));
  if (absl::Status priority = CheckPriority(request->priority()); !priority.ok())
    return ToGrpc(priority);
  absl::StatusOr<SessionRecord> session = AcquireForCall(request->session_id());
  if (!session.ok()) return ToGrpc(session.status());
  auto job = std::make_shared<Request>();
  job->priority = request->priority();
  job->id = RequestId(*context);
  job->session = session->engine_session;
  job->prompt = std::move(*tokens);
  job->generate = false;
  spdlog::info("[{}] Append to {}: {} tokens", job->id, session->id, job->prompt.size());
  const int64_t total = static_cast<int64_t>(job->prompt.size());
  grpc::Status result = grpc::Status::OK;
  sessions_.SetRunning(session->id, job);
  if (absl::Status queued = worker_.Submit(job); !queued.ok()) {
    result = ToGrpc(queued);
  } else {
    RequestEvent last = Stream(context, job, [&](const RequestEvent& event) {
      v1::AppendResponse progress;
      progress.set_appended_tokens(event.prefilled_tokens);
      progress.set_total_tokens(total);
      progress.set_session_tokens(event.session_tokens);
      return writer->Write(progress);
    });
    if (!last.error.ok()) result = ToGrpc(last.error);
    if (sessions_.Deleting(session->id)) {
      result = DeletedWhileRunning(session->id);
    } else if (absl::Status persisted = Persist(*session); !persisted.ok() && result.ok()) {
      result = ToGrpc(persisted);
    }
    if (context->IsCancelled())
      result = grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the call");
  }
  if (std::optional<SessionRecord> gone = sessions_.EndCall(session->id)) Forget(*gone);
  return result;
}

void SympowService::FillSessions(const std::vector<SessionRecord>& records,
                                 const std::function<v1::Session*()>& next) {
  // One trip to the worker for all the token counts: a page waits for one step, not one each.
  std::vector<int64_t> tokens(records.size());
  std::vector<StateTier> tiers(records.size());
  worker_.Run([&](Engine& engine) {
    for (size_t i = 0; i < records.size(); ++i) {
      tokens[i] = engine.SessionLength(records[i].engine_session).value_or(0);
      tiers[i] = engine.SessionTier(records[i].engine_session).value_or(StateTier::kDevice);
    }
  });
  for (size_t i = 0; i < records.size(); ++i) FillSession(records[i], tokens[i], tiers[i], next());
}

void SympowService::FillSession(const SessionRecord& record, int64_t tokens, StateTier tier,
                                v1::Session* out) {
  out->set_session_id(record.id);
  out->set_token_count(tokens);
  out->set_state_bytes(state_bytes_);
  out->set_location(tier == StateTier::kDevice ? v1::STATE_LOCATION_DEVICE
                    : tier == StateTier::kHost ? v1::STATE_LOCATION_HOST
                                               : v1::STATE_LOCATION_DISK);
  *out->mutable_created() = TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(record.created));
  *out->mutable_last_used() = TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(record.last_used));
  out->set_busy(record.busy);
}

grpc::Status SympowService::CreateSession(grpc::ServerContext* context,
                                          const v1::CreateSessionRequest* request,
                                          v1::Session* response) {
  std::vector<int32_t> system_prompt;
  if (request->has_system_prompt()) {
    absl::StatusOr<std::vector<int32_t>> tokens =
        ToTokens(request->system_prompt(), "system_prompt");
    if (!tokens.ok()) return ToGrpc(tokens.status());
    system_prompt = std::move(*tokens);
  }
  if (absl::Status id = CheckSessionId(request->session_id()); !id.ok()) return ToGrpc(id);
  if (leases_ && !request->session_id().empty() &&
      std::filesystem::exists(SnapshotPath(limits_.state_dir, request->session_id()))) {
    return ToGrpc(absl::AlreadyExistsError(
        absl::StrCat("session_id '", request->session_id(), "' already exists")));
  }
  absl::StatusOr<SessionRecord> session = NewSession(false, request->session_id());
  if (!session.ok()) return ToGrpc(session.status());
  if (leases_) {
    if (absl::Status leased = leases_->Acquire(session->id); !leased.ok()) {
      Discard(*session);
      return ToGrpc(leased);
    }
  }
  if (!system_prompt.empty()) {
    sessions_.Acquire(session->id).IgnoreError();
    auto job = std::make_shared<Request>();
    job->session = session->engine_session;
    job->prompt = std::move(system_prompt);
    job->generate = false;
    absl::Status status = worker_.Submit(job);
    if (status.ok()) status = Stream(context, job, [](const RequestEvent&) { return true; }).error;
    sessions_.EndCall(session->id);
    if (!status.ok() || context->IsCancelled()) {
      Discard(*session);
      return status.ok() ? grpc::Status(grpc::StatusCode::CANCELLED,
                                        "cancelled while prefilling system_prompt")
                         : ToGrpc(status);
    }
  }
  if (absl::Status persisted = Persist(*session); !persisted.ok()) {
    Discard(*session);
    return ToGrpc(persisted);
  }
  spdlog::info("created session {}", session->id);
  FillSessions({sessions_.Get(session->id).value()}, [&] { return response; });
  return grpc::Status::OK;
}

grpc::Status SympowService::GetSession(grpc::ServerContext*, const v1::GetSessionRequest* request,
                                       v1::Session* response) {
  absl::StatusOr<SessionRecord> session = Lookup(request->session_id());
  if (!session.ok()) return ToGrpc(session.status());
  FillSessions({*session}, [&] { return response; });
  return grpc::Status::OK;
}

grpc::Status SympowService::ListSessions(grpc::ServerContext*,
                                         const v1::ListSessionsRequest* request,
                                         v1::ListSessionsResponse* response) {
  if (request->page_size() < 0) return ToGrpc(Invalid("page_size", "must be >= 0"));
  const int64_t page_size = request->page_size() == 0
                                ? kDefaultPageSize
                                : std::min<int64_t>(request->page_size(), kMaxPageSize);
  bool more = false;
  std::vector<SessionRecord> page = sessions_.List(request->page_token(), page_size, &more);
  FillSessions(page, [&] { return response->add_sessions(); });
  if (more && !page.empty()) response->set_next_page_token(page.back().id);
  return grpc::Status::OK;
}

grpc::Status SympowService::ForkSession(grpc::ServerContext*, const v1::ForkSessionRequest* request,
                                        v1::Session* response) {
  absl::StatusOr<SessionRecord> source = Lookup(request->session_id());
  if (!source.ok()) return ToGrpc(source.status());
  if (absl::Status capacity = sessions_.CheckCapacity(); !capacity.ok()) return ToGrpc(capacity);
  absl::StatusOr<SessionId> fork = absl::InternalError("unset");
  worker_.Run([&](Engine& engine) { fork = engine.ForkSession(source->engine_session); });
  if (!fork.ok()) return ToGrpc(fork.status());
  SessionRecord record = sessions_.Add(*fork, false).value();  // a new random id: never taken
  UpdateSessionGauges();
  if (absl::Status persisted = Persist(record); !persisted.ok()) {
    Discard(record);
    return ToGrpc(persisted);
  }
  spdlog::info("forked session {} from {}", record.id, source->id);
  FillSessions({record}, [&] { return response; });
  return grpc::Status::OK;
}

grpc::Status SympowService::DeleteSession(grpc::ServerContext*,
                                          const v1::DeleteSessionRequest* request,
                                          v1::DeleteSessionResponse*) {
  if (absl::StatusOr<SessionRecord> found = Lookup(request->session_id()); !found.ok()) {
    return ToGrpc(found.status());
  }
  absl::StatusOr<std::optional<SessionRecord>> deleted = sessions_.Delete(request->session_id());
  if (!deleted.ok()) return ToGrpc(deleted.status());
  if (deleted->has_value()) {
    Forget(**deleted);
  } else {
    spdlog::info("session {} is busy: its call is cancelled, and the session goes when it ends",
                 request->session_id());
  }
  return grpc::Status::OK;
}

void SympowService::Forget(const SessionRecord& record) {
  EndSession(record);
  if (!limits_.state_dir.empty()) {
    if (absl::Status removed_file = RemoveSnapshot(limits_.state_dir, record.id);
        !removed_file.ok()) {
      spdlog::error("session {} deleted but its snapshot stays: {}", record.id,
                    removed_file.ToString());
    }
  }
  if (leases_) leases_->Release(record.id);
  spdlog::info("deleted session {}", record.id);
}

grpc::Status SympowService::DeletedWhileRunning(const std::string& session_id) {
  return grpc::Status(
      grpc::StatusCode::ABORTED,
      absl::StrCat("session_id '", session_id, "' was deleted while this call was running"));
}

grpc::Status SympowService::Tokenize(grpc::ServerContext*, const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) {
  for (int32_t id : tokenizer_.Encode(request->text())) {
    response->add_token_ids(id);
    response->add_pieces(ToValidUtf8(tokenizer_.TokenBytes(id)));
  }
  return grpc::Status::OK;
}

grpc::Status SympowService::Detokenize(grpc::ServerContext*, const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* response) {
  absl::StatusOr<std::string> text = tokenizer_.Decode(
      std::vector<int32_t>(request->token_ids().begin(), request->token_ids().end()));
  if (!text.ok()) return ToGrpc(Invalid("token_ids", text.status().message()));
  response->set_text(ToValidUtf8(*text));
  return grpc::Status::OK;
}

grpc::Status SympowService::GetModelInfo(grpc::ServerContext*, const v1::GetModelInfoRequest*,
                                         v1::ModelInfo* response) {
  response->set_config_json(ModelConfigToJson(config_));
  response->set_model_path(limits_.model_path);
  response->set_vocab_size(config_.vocab_size);
  response->set_eos_token_id(config_.eos_token_id ? static_cast<int32_t>(*config_.eos_token_id)
                                                  : -1);
  response->set_state_bytes_per_session(state_bytes_);
  response->set_backend(backend_name_);
  response->set_max_sessions(static_cast<int32_t>(limits_.max_sessions));
  response->set_max_prompt_tokens(static_cast<int32_t>(limits_.max_prompt_tokens));
  response->set_max_new_tokens(static_cast<int32_t>(limits_.max_new_tokens));
  response->set_max_queued_requests(static_cast<int32_t>(limits_.max_queued_requests));
  response->set_state_slots(static_cast<int32_t>(limits_.state_slots));
  response->set_host_state_sessions(limits_.host_state_bytes / state_bytes_);
  response->set_disk_tier(limits_.disk_tier);
  int64_t device_memory = 0;
  worker_.Run([&](Engine& engine) { device_memory = engine.backend().DeviceMemoryInUse(); });
  response->set_device_memory_bytes(device_memory);
  return grpc::Status::OK;
}

}  // namespace sympow::server
