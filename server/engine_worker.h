// The engine worker: one thread that owns the Engine and runs it in steps that the Scheduler
// plans: every generating request decodes one token in a single batch, and prompts are prefilled
// in chunks under the step's token budget, so a long prompt never stalls other streams for more
// than one chunk.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "model/engine.h"
#include "model/sampler.h"
#include "model/tokenizer/incremental_decoder.h"
#include "model/tokenizer/tokenizer.h"
#include "server/event_delivery.h"
#include "server/metrics.h"
#include "server/prefix_cache.h"
#include "server/request.h"
#include "server/scheduler.h"

namespace sympow::server {

struct EngineWorkerOptions {
  SchedulerOptions scheduling;
  PrefixCacheOptions prefix_cache;
  int64_t max_requests = 256;  // requests queued or running before RESOURCE_EXHAUSTED
};

class EngineWorker {
 public:
  EngineWorker(std::unique_ptr<Engine> engine, const Tokenizer& tokenizer, ServerMetrics& metrics,
               EngineWorkerOptions options);
  ~EngineWorker();

  // Queues a request; RESOURCE_EXHAUSTED when max_requests are queued or running, UNAVAILABLE
  // after Stop().
  absl::Status Submit(std::shared_ptr<Request> request);
  // Runs `fn` on the worker thread between steps and waits for it (session bookkeeping).
  void Run(const std::function<void(Engine&)>& fn);
  // Ends every request with FinishReason::kShutdown and joins the thread.
  void Stop();

 private:
  // A request in the engine: where its prompt and generation stand.
  struct Active {
    SequenceId id = 0;
    std::shared_ptr<Request> request;
    int64_t prefilled = 0;
    int64_t checkpoint = 0;  // a branch point to stop a prefill chunk at and cache the state
    bool admitted = false;   // running: its session's state is pinned to its slot
    std::optional<TokenOutput> pending;  // sampled; committed to the session by the next decode
    int64_t generated = 0;
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<IncrementalDecoder> decoder;
    std::string held_text;  // text that might be the start of a stop string
    absl::Time first_token_time = absl::InfinitePast();
    absl::Time last_token_time;
    bool done = false;
  };

  void Loop();
  // Takes queued calls and requests; false when stopping.
  bool TakeWork();
  // One row of a step: a prompt chunk (count tokens) or a decode token of `active`.
  struct StepPart {
    Active* active = nullptr;
    bool decode = false;
    int64_t count = 0;
  };
  // Every row of the plan in one forward pass of the engine.
  void RunStep(const StepPlan& plan);
  // Commits each part's result: prefill progress, the first sampled token, streamed tokens.
  void FinishStep(std::span<const StepPart> parts, std::span<const Engine::StepInput> inputs,
                  const Engine::StepResult& result);
  // The prompt tokens this row prefills (after starting from a cached prefix, and stopping at a
  // branch point to cache the state there).
  int64_t PromptChunk(Active& active, const StepRow& row);
  // After `count` prompt tokens went in: progress, caching, and the first token when complete.
  void AfterPrefill(Active& active, int64_t count, SampledToken sampled,
                    std::span<const float> logits);
  // On a request's first prefill into an empty session: starts it from the longest cached prefix
  // of its prompt and notes where the prompt branches from recent ones.
  void UsePrefixCache(Active& active);
  // Offers the session's current state to the prefix cache; a sequence end replaces the
  // session's previous one.
  void CacheState(const Active& active, const PrefixKey& key, bool sequence_end);
  // Drops finished requests from the worker and the scheduler.
  void Reap();
  // Takes a sampled token as the next one to commit, or finishes the request on a stop token;
  // `logits` (the row's, on the host) are needed only for top log-probs.
  void Accept(Active& active, SampledToken sampled, std::span<const float> logits);
  // Streams a committed token: its text (held back while it may start a stop string).
  void Emit(Active& active, const TokenOutput& token);
  void Finish(Active& active, FinishReason reason);
  void Fail(Active& active, const absl::Status& error);
  // Sends the request's last event and frees its place among max_requests.
  void End(const std::shared_ptr<Request>& request, RequestEvent event);

  std::unique_ptr<Engine> engine_;
  const Tokenizer& tokenizer_;
  ServerMetrics& metrics_;
  EngineWorkerOptions options_;

  absl::Mutex mutex_;
  std::deque<std::shared_ptr<Request>> waiting_ ABSL_GUARDED_BY(mutex_);
  std::deque<std::function<void()>> calls_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  int64_t in_flight_ ABSL_GUARDED_BY(mutex_) = 0;  // submitted and not yet finished
  bool exited_ ABSL_GUARDED_BY(mutex_) = false;    // the thread has run its last call

  // Worker thread only: requests taken from waiting_, by the id the scheduler knows them by.
  std::map<SequenceId, Active> active_;
  Scheduler scheduler_;
  PrefixCache prefix_cache_;
  EventDelivery delivery_;  // every event the worker sends goes through it
  SequenceId next_id_ = 1;
  std::thread thread_;
};

}  // namespace sympow::server
