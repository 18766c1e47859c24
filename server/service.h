// The sympow.v1.Sympow gRPC service: validates requests, maps sessions, and streams what the
// engine worker produces. Every error leaves as a gRPC status naming the field at fault.
#pragma once

#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "model/engine.h"
#include "model/tokenizer/tokenizer.h"
#include "server/engine_worker.h"
#include "server/metrics.h"
#include "server/service_options.h"
#include "server/session_lease.h"
#include "server/session_registry.h"
#include "sympow/v1/sympow.grpc.pb.h"

namespace sympow::server {

class SympowService final : public sympow::v1::Sympow::Service {
 public:
  SympowService(const ModelConfig& config, int64_t state_bytes, std::string backend_name,
                const Tokenizer& tokenizer, EngineWorker& worker, ServerMetrics& metrics,
                ServiceLimits limits);
  ~SympowService() override;

  // Loads every snapshot in --state_dir (skipping, and logging, any that is corrupt or from
  // another model); returns how many sessions came back.
  int64_t RestoreSessions();

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status Append(grpc::ServerContext* context, const v1::AppendRequest* request,
                      grpc::ServerWriter<v1::AppendResponse>* writer) override;
  grpc::Status CreateSession(grpc::ServerContext* context, const v1::CreateSessionRequest* request,
                             v1::Session* response) override;
  grpc::Status GetSession(grpc::ServerContext* context, const v1::GetSessionRequest* request,
                          v1::Session* response) override;
  grpc::Status ListSessions(grpc::ServerContext* context, const v1::ListSessionsRequest* request,
                            v1::ListSessionsResponse* response) override;
  grpc::Status ForkSession(grpc::ServerContext* context, const v1::ForkSessionRequest* request,
                           v1::Session* response) override;
  grpc::Status DeleteSession(grpc::ServerContext* context, const v1::DeleteSessionRequest* request,
                             v1::DeleteSessionResponse* response) override;
  grpc::Status Tokenize(grpc::ServerContext* context, const v1::TokenizeRequest* request,
                        v1::TokenizeResponse* response) override;
  grpc::Status Detokenize(grpc::ServerContext* context, const v1::DetokenizeRequest* request,
                          v1::DetokenizeResponse* response) override;
  grpc::Status GetModelInfo(grpc::ServerContext* context, const v1::GetModelInfoRequest* request,
                            v1::ModelInfo* response) override;

 private:
  absl::StatusOr<std::vector<int32_t>> ToTokens(const v1::Input& input,
                                                absl::string_view field) const;
  // A new engine session, registered; RESOURCE_EXHAUSTED at the session limit.
  absl::StatusOr<SessionRecord> NewSession(bool ephemeral, const std::string& id = "");
  // Frees an engine session that is already out of the registry.
  void EndSession(const SessionRecord& record);
  // Deletes a session for good: engine state, snapshot file.
  void Forget(const SessionRecord& record);
  static grpc::Status DeletedWhileRunning(const std::string& session_id);
  // Takes a session out of the registry (busy or not) and frees it.
  void Discard(const SessionRecord& record);
  // Runs a request in the worker and hands each event to `on_event` until it finishes or the
  // client goes away; returns the final event.
  RequestEvent Stream(grpc::ServerContext* context, const std::shared_ptr<Request>& request,
                      const std::function<bool(const RequestEvent&)>& on_event);
  // Describes each record into the message `next()` returns, in order.
  void FillSessions(const std::vector<SessionRecord>& records,
                    const std::function<v1::Session*()>& next);
  void FillSession(const SessionRecord& record, int64_t tokens, StateTier tier, v1::Session* out);
  void UpdateSessionGauges();
  // Saves the session's state to --state_dir (when set): a session is durable once a call on it
  // completes. An error leaves the previous snapshot in place.
  absl::Status Persist(const SessionRecord& record);
  // Registers the session in one snapshot file (checked, within --max_sessions).
  absl::Status RestoreSnapshot(const std::string& path);

  // With several replicas (limits_.replica_id): a session this replica does not hold is taken
  // over from its snapshot under a lease when no other live replica holds it.
  absl::StatusOr<SessionRecord> Lookup(const std::string& id);
  absl::StatusOr<SessionRecord> AcquireForCall(const std::string& id);
  absl::Status Adopt(const std::string& id);
  // Renews the leases of the sessions held, every third of their lifetime; a session whose lease
  // another replica took is dropped here (its snapshot stays, for the new owner).
  void RenewLeases();

  const ModelConfig& config_;
  int64_t state_bytes_;
  std::string backend_name_;
  const Tokenizer& tokenizer_;
  EngineWorker& worker_;
  ServerMetrics& metrics_;
  ServiceLimits limits_;
  SessionRegistry sessions_;
  std::unique_ptr<SessionLeases> leases_;
  absl::Mutex adopting_;  // one takeover at a time
  absl::Notification stop_renewing_;
  std::thread renewer_;
};

}  // namespace sympow::server
