// sympow-server: loads a model and serves the sympow.v1 gRPC API, gRPC health and reflection, and
// Prometheus metrics. SIGTERM or SIGINT: stop accepting calls, let streams finish within
// --shutdown_grace_s, then end the rest (FINISH_REASON_SHUTDOWN).
#include <csignal>
#include <filesystem>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server_builder.h"
#include "model/backend_factory.h"
#include "model/engine.h"
#include "model/fingerprint.h"
#include "model/tokenizer/tokenizer.h"
#include "server/engine_worker.h"
#include "server/metrics.h"
#include "server/service.h"
#include "server/snapshot.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, model, "models/sympow-tiny",
          "model directory (config.json, model.safetensors, tokenizer.json)");
ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC address, host:port (0.0.0.0:PORT for all interfaces)");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9400",
          "Prometheus /metrics address (9400: 9090 is Prometheus's own); empty: off");
ABSL_FLAG(std::string, device, "auto",
          "backend: cpu, cuda, or auto (cuda when this build has it and a GPU is present)");
ABSL_FLAG(bool, cuda_graphs, true,
          "on the GPU, replay decode steps as CUDA graphs (one per padded batch size)");
ABSL_FLAG(int64_t, max_sessions, 256, "sessions held at once (each costs one fixed-size state)");
ABSL_FLAG(int64_t, state_slots, 0,
          "states kept in the backend's memory (GPU memory on --device cuda); 0: --max_sessions, "
          "or as many as fit. Idle states beyond them move to host memory, then to disk");
ABSL_FLAG(int64_t, host_state_bytes, 0,
          "host memory for idle states moved out of the state slots; 0: no host tier");
ABSL_FLAG(std::string, spill_dir, "",
          "directory for idle states beyond --host_state_bytes; default STATE_DIR/spill when "
          "--state_dir is given, else no disk tier");
ABSL_FLAG(int64_t, max_prompt_tokens, 1 << 20, "longest input one request may carry");
ABSL_FLAG(int64_t, max_new_tokens, 4096, "the most tokens a request may ask to generate");
ABSL_FLAG(int64_t, default_max_new_tokens, 256, "tokens generated when a request does not say");
ABSL_FLAG(int64_t, max_queued_requests, 256,
          "requests queued or running before further ones get RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, prefill_chunk_tokens, 512,
          "prompt tokens one request prefills per engine step at most");
ABSL_FLAG(int64_t, step_token_budget, 2048,
          "tokens per engine step: every decoding request's token, then prompt chunks (at least "
          "one chunk per step)");
ABSL_FLAG(int64_t, max_running_requests, 256,
          "requests admitted to run at once; the rest wait, best priority first");
ABSL_FLAG(int64_t, prefix_cache_bytes, int64_t{1} << 30,
          "host memory for cached prefix states (system prompts, shared documents, earlier turns); "
          "0: no prefix cache");
ABSL_FLAG(int64_t, prefix_cache_min_tokens, 16, "shorter prefixes are not cached");
ABSL_FLAG(double, priority_aging_s, 10.0,
          "seconds of waiting that raise a request's priority by one, so none starves");
ABSL_FLAG(int64_t, max_message_bytes, 16 << 20, "largest gRPC request message accepted");
ABSL_FLAG(
    std::string, state_dir, "",
    "directory for session snapshots: sessions survive restarts (and kill -9) as of their last "
    "completed call; empty: sessions end with the process");
ABSL_FLAG(std::string, replica_id, "",
          "this replica's name when several share --state_dir: each session is then served by one "
          "replica at a time, under a lease, and taken over from its snapshot when its replica "
          "stops renewing it; empty: one server owning every snapshot");
ABSL_FLAG(double, lease_ttl_s, 10.0, "how long a session lease lasts without renewal");
ABSL_FLAG(std::string, log_level, "info",
          "trace, debug (adds a line per engine step with its rows and timings), info, warn, error");
ABSL_FLAG(double, shutdown_grace_s, 10.0, "seconds running calls get to finish on SIGTERM/SIGINT");

namespace {

absl::Notification* shutdown_requested = nullptr;

void OnSignal(int) {
  if (shutdown_requested != nullptr && !shutdown_requested->HasBeenNotified())
    shutdown_requested->Notify();
}

sympow::server::SchedulerOptions SchedulingOptions() {
  return {.step_token_budget = absl::GetFlag(FLAGS_step_token_budget),
          .prefill_chunk_tokens = absl::GetFlag(FLAGS_prefill_chunk_tokens),
          .max_running = absl::GetFlag(FLAGS_max_running_requests),
          .priority_aging = absl::Seconds(absl::GetFlag(FLAGS_priority_aging_s))};
}

// Numeric flags out of range stop the server at once with the flag's name.
absl::Status CheckFlags() {
  const std::pair<const char*, int64_t> positive[] = {
      {"max_sessions", absl::GetFlag(FLAGS_max_sessions)},
      {"max_prompt_tokens", absl::GetFlag(FLAGS_max_prompt_tokens)},
      {"max_new_tokens", absl::GetFlag(FLAGS_max_new_tokens)},
      {"default_max_new_tokens", absl::GetFlag(FLAGS_default_max_new_tokens)},
      {"max_queued_requests", absl::GetFlag(FLAGS_max_queued_requests)},
      {"prefill_chunk_tokens", absl::GetFlag(FLAGS_prefill_chunk_tokens)},
      {"step_token_budget", absl::GetFlag(FLAGS_step_token_budget)},
      {"max_running_requests", absl::GetFlag(FLAGS_max_running_requests)},
      {"max_message_bytes", absl::GetFlag(FLAGS_max_message_bytes)}};
  if (absl::GetFlag(FLAGS_state_slots) < 0 || absl::GetFlag(FLAGS_host_state_bytes) < 0 ||
      absl::GetFlag(FLAGS_prefix_cache_bytes) < 0 ||
      absl::GetFlag(FLAGS_prefix_cache_min_tokens) < 1) {
    return absl::InvalidArgumentError(
        "--state_slots, --host_state_bytes and --prefix_cache_bytes must be >= 0, "
        "--prefix_cache_min_tokens >= 1");
  }
  for (const auto& [name, value] : positive) {
    if (value <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " must be positive, got ", value));
    }
  }
  if (!absl::GetFlag(FLAGS_replica_id).empty() && absl::GetFlag(FLAGS_state_dir).empty()) {
    return absl::InvalidArgumentError(
        "--replica_id needs --state_dir, the snapshot directory "
        "the replicas share");
  }
  if (!(absl::GetFlag(FLAGS_lease_ttl_s) > 0)) {
    return absl::InvalidArgumentError("--lease_ttl_s must be positive");
  }
  const std::pair<const char*, double> non_negative[] = {
      {"priority_aging_s", absl::GetFlag(FLAGS_priority_aging_s)},
      {"shutdown_grace_s", absl::GetFlag(FLAGS_shutdown_grace_s)}};
  for (const auto& [name, value] : non_negative) {
    if (!(value >= 0)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " must be >= 0, got ", value));
    }
  }
  return absl::OkStatus();
}

// The backend with its state slots: --state_slots, or --max_sessions cut down (halving) to what
// the device holds, so the server starts on any GPU and moves idle states to the other tiers.
struct StatePool {
  std::unique_ptr<sympow::Backend> backend;
  int64_t slots = 0;
};

absl::StatusOr<StatePool> CreateStatePool(const sympow::ModelConfig& config) {
  const bool asked = absl::GetFlag(FLAGS_state_slots) > 0;
  int64_t slots = asked ? absl::GetFlag(FLAGS_state_slots) : absl::GetFlag(FLAGS_max_sessions);
  while (true) {
    absl::StatusOr<std::unique_ptr<sympow::Backend>> backend =
        sympow::CreateBackend(absl::GetFlag(FLAGS_device), config, slots);
    if (backend.ok()) return StatePool{std::move(*backend), slots};
    if (asked || slots == 1 || !absl::IsResourceExhausted(backend.status())) {
      return backend.status();
    }
    spdlog::warn("{} state slots do not fit ({}); trying {}", slots,
                 std::string(backend.status().message()), slots / 2);
    slots /= 2;
  }
}

sympow::StateTierOptions TierOptions() {
  std::string spill = absl::GetFlag(FLAGS_spill_dir);
  if (spill.empty() && !absl::GetFlag(FLAGS_state_dir).empty()) {
    spill = (std::filesystem::path(absl::GetFlag(FLAGS_state_dir)) / "spill").string();
  }
  return {.host_bytes = absl::GetFlag(FLAGS_host_state_bytes), .spill_dir = spill};
}

int Serve() {
  using namespace sympow;
  if (absl::Status flags = CheckFlags(); !flags.ok()) {
    spdlog::critical("{}", std::string(flags.message()));
    return 1;
  }
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  absl::StatusOr<std::unique_ptr<LoadedModel>> model = LoadModel(model_dir);
  if (!model.ok()) {
    spdlog::critical("{}", std::string(model.status().message()));
    return 1;
  }
  const ModelConfig config = (*model)->config;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadTokenizerForModel(model_dir, config.vocab_size);
  if (!tokenizer.ok()) {
    spdlog::critical("{}", std::string(tokenizer.status().message()));
    return 1;
  }
  const int64_t max_sessions = absl::GetFlag(FLAGS_max_sessions);
  absl::StatusOr<StatePool> pool = CreateStatePool(config);
  if (!pool.ok()) {
    spdlog::critical("--device={}: {}", absl::GetFlag(FLAGS_device),
                     std::string(pool.status().message()));
    return 1;
  }
  const int64_t state_bytes = pool->backend->state_layout().Bytes();
  const std::string backend_name = pool->backend->name();
  EngineOptions engine_options;
  engine_options.state_tiers = TierOptions();
  engine_options.record_decode_steps = absl::GetFlag(FLAGS_cuda_graphs);
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Create(**model, std::move(pool->backend), engine_options);
  if (!engine.ok()) {
    spdlog::critical("{}", std::string(engine.status().message()));
    return 1;
  }
  const std::string fingerprint = ModelFingerprint(**model);
  model->reset();  // the engine holds its own copy of the weights
  const StateTierOptions& tiers = engine_options.state_tiers;
  spdlog::info("model {}: {} layers, hidden {}, degree {}, vocab {}; backend {}", model_dir,
               config.num_layers, config.hidden_size, config.degree, config.vocab_size,
               backend_name);
  spdlog::info(
      "state {:.2f} MB per session at any length; {} state slots ({:.1f} MB) in the backend, host "
      "tier {:.1f} MB ({} states), disk tier {}; up to {} sessions",
      state_bytes / 1e6, pool->slots, pool->slots * state_bytes / 1e6, tiers.host_bytes / 1e6,
      tiers.host_bytes / state_bytes, tiers.spill_dir.empty() ? "off" : tiers.spill_dir,
      max_sessions);

  server::ServerMetrics metrics;
  metrics.StatePoolCapacity(pool->slots, tiers.host_bytes);
  if (const std::string address = absl::GetFlag(FLAGS_metrics_listen); !address.empty()) {
    if (absl::Status status = metrics.Expose(address); !status.ok()) {
      spdlog::critical("{}", std::string(status.message()));
      return 1;
    }
    spdlog::info("metrics on http://{}/metrics", address);
  }
  server::EngineWorker worker(
      std::move(*engine), **tokenizer, metrics,
      {.scheduling = SchedulingOptions(),
       .prefix_cache = {.max_bytes = absl::GetFlag(FLAGS_prefix_cache_bytes),
                        .min_tokens = absl::GetFlag(FLAGS_prefix_cache_min_tokens)},
       .max_requests = absl::GetFlag(FLAGS_max_queued_requests)});
  server::SympowService service(
      config, state_bytes, backend_name, **tokenizer, worker, metrics,
      {.max_sessions = max_sessions,
       .max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens),
       .max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens),
       .default_max_new_tokens = absl::GetFlag(FLAGS_default_max_new_tokens),
       .max_queued_requests = absl::GetFlag(FLAGS_max_queued_requests),
       .model_path = model_dir,
       .state_dir = absl::GetFlag(FLAGS_state_dir),
       .model_fingerprint = fingerprint,
       .state_slots = pool->slots,
       .host_state_bytes = tiers.host_bytes,
       .disk_tier = !tiers.spill_dir.empty(),
       .replica_id = absl::GetFlag(FLAGS_replica_id),
       .lease_ttl = absl::Seconds(absl::GetFlag(FLAGS_lease_ttl_s))});
  if (const std::string state_dir = absl::GetFlag(FLAGS_state_dir); !state_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(state_dir, error);
    if (error) {
      spdlog::critical("--state_dir={}: {}", state_dir, error.message());
      return 1;
    }
    if (const std::string replica = absl::GetFlag(FLAGS_replica_id); !replica.empty()) {
      spdlog::info("replica '{}' of those sharing {}: sessions are taken over on first use",
                   replica, state_dir);
    } else {
      spdlog::info("restored {} sessions from {}", service.RestoreSessions(), state_dir);
    }
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(),
                           &bound_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(absl::GetFlag(FLAGS_max_message_bytes)));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  if (grpc_server == nullptr || bound_port == 0) {
    spdlog::critical("--listen={}: cannot listen there", absl::GetFlag(FLAGS_listen));
    return 1;
  }
  grpc_server->GetHealthCheckService()->SetServingStatus(true);
  spdlog::info("serving sympow.v1.Sympow on {} (port {})", absl::GetFlag(FLAGS_listen), bound_port);

  absl::Notification shutdown;
  shutdown_requested = &shutdown;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  // While the snapshot directory is unusable the server reports NOT_SERVING, so that a router or
  // Kubernetes takes it out, rather than serve sessions it can neither save nor lease.
  bool serving = true;
  while (!shutdown.WaitForNotificationWithTimeout(absl::Seconds(1))) {
    const std::string state_dir = absl::GetFlag(FLAGS_state_dir);
    if (state_dir.empty()) continue;
    const absl::Status usable = server::ProbeStateDir(state_dir);
    if (usable.ok() == serving) continue;
    serving = usable.ok();
    grpc_server->GetHealthCheckService()->SetServingStatus(serving);
    if (serving) {
      spdlog::info("--state_dir is usable again: SERVING");
    } else {
      spdlog::error("{}: NOT_SERVING until it is usable", usable.ToString());
    }
  }
  spdlog::info("shutting down: new calls refused, running ones get {} s",
               absl::GetFlag(FLAGS_shutdown_grace_s));
  grpc_server->GetHealthCheckService()->SetServingStatus(false);
  // Streams still running at the deadline are ended by the worker with FINISH_REASON_SHUTDOWN;
  // grpc's Shutdown returns once every call has ended.
  const absl::Duration grace = absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_s));
  absl::Notification calls_ended;
  std::thread stopper([&] {
    if (!calls_ended.WaitForNotificationWithTimeout(grace)) worker.Stop();
  });
  grpc_server->Shutdown(absl::ToChronoTime(absl::Now() + grace + absl::Seconds(2)));
  calls_ended.Notify();
  stopper.join();
  worker.Stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "sympow-server --model DIR --listen HOST:PORT --metrics_listen HOST:PORT [flags]");
  absl::ParseCommandLine(argc, argv);
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v");
  const spdlog::level::level_enum level = spdlog::level::from_str(absl::GetFlag(FLAGS_log_level));
  if (level == spdlog::level::off && absl::GetFlag(FLAGS_log_level) != "off") {
    spdlog::error("--log_level: '{}' is not one of trace, debug, info, warn, error, off",
                  absl::GetFlag(FLAGS_log_level));
    return 2;
  }
  spdlog::set_level(level);
  return Serve();
}
