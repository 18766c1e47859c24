#include "server/metrics.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace sympow::server {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

Histogram::BucketBoundaries LatencyBuckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,
          0.5,   0.75,  1.0,  2.5,  5.0,  10.0, 20.0, 40.0, 80.0};
}

Histogram::BucketBoundaries TokenCountBuckets() {
  return {1,    2,    5,    10,    20,    50,    100,    200,    500,
          1000, 2000, 5000, 10000, 20000, 50000, 100000, 1000000};
}

}  // namespace

ServerMetrics::ServerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  request_success_ =
      &BuildCounter()
           .Name("sympow:request_success_total")
           .Help("Requests finished, by finished_reason (length, stop, cancelled, shutdown, error)")
           .Register(r);
  auto histogram = [&](const char* name, const char* help, Histogram::BucketBoundaries buckets) {
    return &BuildHistogram().Name(name).Help(help).Register(r).Add({}, std::move(buckets));
  };
  time_to_first_token_ =
      histogram("sympow:time_to_first_token_seconds",
                "Seconds from a request's arrival to its first token", LatencyBuckets());
  time_per_output_token_ =
      histogram("sympow:time_per_output_token_seconds",
                "Seconds between consecutive tokens of a request", LatencyBuckets());
  e2e_latency_ = histogram("sympow:e2e_request_latency_seconds",
                           "Seconds from arrival to the last token", LatencyBuckets());
  request_prompt_tokens_ =
      histogram("sympow:request_prompt_tokens", "Prompt tokens per request", TokenCountBuckets());
  request_generation_tokens_ = histogram("sympow:request_generation_tokens",
                                         "Generated tokens per request", TokenCountBuckets());
  batch_size_ =
      histogram("sympow:batch_size", "Rows (decode tokens plus prefill tokens) per engine step",
                TokenCountBuckets());
  step_time_ = histogram("sympow:step_time_seconds", "Seconds per engine step", LatencyBuckets());
  prompt_tokens_ = &BuildCounter()
                        .Name("sympow:prompt_tokens_total")
                        .Help("Prompt tokens prefilled")
                        .Register(r)
                        .Add({});
  generation_tokens_ = &BuildCounter()
                            .Name("sympow:generation_tokens_total")
                            .Help("Tokens generated")
                            .Register(r)
                            .Add({});
  running_ = &BuildGauge()
                  .Name("sympow:num_requests_running")
                  .Help("Requests in the engine's batch")
                  .Register(r)
                  .Add({});
  waiting_ = &BuildGauge()
                  .Name("sympow:num_requests_waiting")
                  .Help("Requests queued for the engine")
                  .Register(r)
                  .Add({});
  auto& sessions = BuildGauge()
                       .Name("sympow:sessions")
                       .Help(
                           "Sessions by where their state lives: a backend state slot (device), "
                           "host memory, or a spill file (disk)")
                       .Register(r);
  sessions_device_ = &sessions.Add({{"location", "device"}});
  sessions_host_ = &sessions.Add({{"location", "host"}});
  sessions_disk_ = &sessions.Add({{"location", "disk"}});
  state_slots_ = &BuildGauge()
                      .Name("sympow:state_slots_total")
                      .Help("State slots in the backend's memory (GPU memory on a GPU)")
                      .Register(r)
                      .Add({});
  auto& host_state = BuildGauge()
                         .Name("sympow:host_state_bytes")
                         .Help("Host memory for states moved out of their slots")
                         .Register(r);
  host_state_bytes_used_ = &host_state.Add({{"kind", "used"}});
  host_state_bytes_capacity_ = &host_state.Add({{"kind", "capacity"}});
  prefix_cache_queries_ = &BuildCounter()
                               .Name("sympow:prefix_cache_queries_total")
                               .Help("Prompts looked up in the prefix-state cache")
                               .Register(r)
                               .Add({});
  prefix_cache_hits_ = &BuildCounter()
                            .Name("sympow:prefix_cache_hits_total")
                            .Help("Prompts that started from a cached state")
                            .Register(r)
                            .Add({});
  prefix_cache_saved_tokens_ = &BuildCounter()
                                    .Name("sympow:prefix_cache_saved_tokens_total")
                                    .Help("Prompt tokens not prefilled thanks to cached states")
                                    .Register(r)
                                    .Add({});
  prefix_cache_bytes_ = &BuildGauge()
                             .Name("sympow:prefix_cache_bytes")
                             .Help("Host memory held by cached prefix states")
                             .Register(r)
                             .Add({});
  cuda_graph_captures_ =
      &BuildCounter()
           .Name("sympow:cuda_graph_captures_total")
           .Help(
               "Decode steps captured as CUDA graphs: one per padded batch size, and again after "
               "an allocation made one stale (0 on the CPU or with --cuda_graphs=false)")
           .Register(r)
           .Add({});
  cuda_graph_replays_ = &BuildCounter()
                             .Name("sympow:cuda_graph_replays_total")
                             .Help("Decode steps replayed from a CUDA graph")
                             .Register(r)
                             .Add({});
  state_bytes_used_ = &BuildGauge()
                           .Name("sympow:state_bytes_used")
                           .Help("Bytes of session states held")
                           .Register(r)
                           .Add({});
  state_bytes_capacity_ =
      &BuildGauge()
           .Name("sympow:state_bytes_capacity")
           .Help("Bytes of session state the server may hold (max_sessions × state size)")
           .Register(r)
           .Add({});
}

absl::Status ServerMetrics::Expose(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("--metrics_listen=", address, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  return absl::OkStatus();
}

void ServerMetrics::RequestFinished(const std::string& outcome, int64_t prompt_tokens,
                                    int64_t generated_tokens, double e2e_seconds) {
  request_success_->Add({{"finished_reason", outcome}}).Increment();
  request_prompt_tokens_->Observe(static_cast<double>(prompt_tokens));
  request_generation_tokens_->Observe(static_cast<double>(generated_tokens));
  e2e_latency_->Observe(e2e_seconds);
}

void ServerMetrics::Step(int64_t batch_rows, double seconds) {
  batch_size_->Observe(static_cast<double>(batch_rows));
  step_time_->Observe(seconds);
}

void ServerMetrics::Queue(int64_t running, int64_t waiting) {
  running_->Set(static_cast<double>(running));
  waiting_->Set(static_cast<double>(waiting));
}

void ServerMetrics::StatePoolCapacity(int64_t slots, int64_t host_bytes) {
  state_slots_->Set(static_cast<double>(slots));
  host_state_bytes_capacity_->Set(static_cast<double>(host_bytes));
}

void ServerMetrics::SessionTiers(const StateTierCounts& counts) {
  host_state_bytes_used_->Set(static_cast<double>(counts.host_bytes));
  sessions_device_->Set(static_cast<double>(counts.device));
  sessions_host_->Set(static_cast<double>(counts.host));
  sessions_disk_->Set(static_cast<double>(counts.disk));
}

void ServerMetrics::PrefixCacheQuery(int64_t saved_tokens) {
  prefix_cache_queries_->Increment();
  if (saved_tokens == 0) return;
  prefix_cache_hits_->Increment();
  prefix_cache_saved_tokens_->Increment(static_cast<double>(saved_tokens));
}

void ServerMetrics::PrefixCacheBytes(int64_t bytes) {
  prefix_cache_bytes_->Set(static_cast<double>(bytes));
}

void ServerMetrics::CudaGraphs(const Backend::RecordingCounts& totals) {
  cuda_graph_captures_->Increment(
      static_cast<double>(totals.captured - cuda_graphs_counted_.captured));
  cuda_graph_replays_->Increment(
      static_cast<double>(totals.replayed - cuda_graphs_counted_.replayed));
  cuda_graphs_counted_ = totals;
}

void ServerMetrics::Sessions(int64_t state_bytes_used, int64_t state_bytes_capacity) {
  state_bytes_used_->Set(static_cast<double>(state_bytes_used));
  state_bytes_capacity_->Set(static_cast<double>(state_bytes_capacity));
}

}  // namespace sympow::server
