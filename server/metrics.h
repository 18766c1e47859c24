// Prometheus metrics of the server, named like vLLM's (prefix sympow:) so dashboards translate.
// docs/metrics.md describes each.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/backend.h"
#include "model/state_tiers.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace sympow::server {

class ServerMetrics {
 public:
  ServerMetrics();

  // Serves /metrics on `address` (host:port); an error when the port cannot be bound.
  absl::Status Expose(const std::string& address);

  void RequestFinished(const std::string& outcome, int64_t prompt_tokens, int64_t generated_tokens,
                       double e2e_seconds);
  void FirstToken(double seconds) { time_to_first_token_->Observe(seconds); }
  void InterToken(double seconds) { time_per_output_token_->Observe(seconds); }
  void PromptTokens(int64_t n) { prompt_tokens_->Increment(static_cast<double>(n)); }
  void GenerationTokens(int64_t n) { generation_tokens_->Increment(static_cast<double>(n)); }
  void Step(int64_t batch_rows, double seconds);
  void Queue(int64_t running, int64_t waiting);
  void Sessions(int64_t state_bytes_used, int64_t state_bytes_capacity);
  void SessionTiers(const StateTierCounts& counts);
  // The state pool's capacity: backend slots, and host memory for states moved out of them.
  void StatePoolCapacity(int64_t slots, int64_t host_bytes);
  // A lookup in the prefix-state cache that saved `saved_tokens` of prefill (0: a miss).
  void PrefixCacheQuery(int64_t saved_tokens);
  void PrefixCacheBytes(int64_t bytes);
  // The backend's totals of decode steps captured and replayed as CUDA graphs.
  void CudaGraphs(const Backend::RecordingCounts& totals);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Family<prometheus::Counter>* request_success_;
  prometheus::Histogram* time_to_first_token_;
  prometheus::Histogram* time_per_output_token_;
  prometheus::Histogram* e2e_latency_;
  prometheus::Histogram* request_prompt_tokens_;
  prometheus::Histogram* request_generation_tokens_;
  prometheus::Histogram* batch_size_;
  prometheus::Histogram* step_time_;
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* generation_tokens_;
  prometheus::Gauge* running_;
  prometheus::Gauge* waiting_;
  prometheus::Gauge* sessions_device_;
  prometheus::Gauge* sessions_host_;
  prometheus::Counter* prefix_cache_queries_;
  prometheus::Counter* prefix_cache_hits_;
  prometheus::Counter* prefix_cache_saved_tokens_;
  prometheus::Gauge* prefix_cache_bytes_;
  prometheus::Counter* cuda_graph_captures_;
  prometheus::Counter* cuda_graph_replays_;
  Backend::RecordingCounts cuda_graphs_counted_;
  prometheus::Gauge* sessions_disk_;
  prometheus::Gauge* state_slots_;
  prometheus::Gauge* host_state_bytes_used_;
  prometheus::Gauge* host_state_bytes_capacity_;
  prometheus::Gauge* state_bytes_used_;
  prometheus::Gauge* state_bytes_capacity_;
};

}  // namespace sympow::server
