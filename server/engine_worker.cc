#include "server/engine_worker.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "spdlog/spdlog.h"

namespace sympow::server {
namespace {

std::string ReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kShutdown:
      return "shutdown";
  }
  return "unknown";
}

// The token with its log-probability and, when asked, the `top` most likely tokens' (raw model
// logits, which are needed only then).
TokenOutput WithLogprobs(SampledToken sampled, std::span<const float> logits, bool logprobs,
                         int32_t top) {
  const int32_t token = sampled.token;
  TokenOutput out{token, 0.0f, {}};
  if (!logprobs) return out;
  out.logprob = sampled.logprob;
  if (top <= 0) return out;
  std::vector<int32_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::partial_sort(order.begin(), order.begin() + top, order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  const float shift = out.logprob - logits[token];  // log-softmax = logit + shift
  for (int32_t i = 0; i < top; ++i)
    out.top_logprobs.emplace_back(order[i], logits[order[i]] + shift);
  return out;
}

}  // namespace

EngineWorker::EngineWorker(std::unique_ptr<Engine> engine, const Tokenizer& tokenizer,
                           ServerMetrics& metrics, EngineWorkerOptions options)
    : engine_(std::move(engine)),
      tokenizer_(tokenizer),
      metrics_(metrics),
      options_(options),
      scheduler_(options.scheduling),
      prefix_cache_(options.prefix_cache, engine_->backend().state_layout().Bytes(),
                    [this] { return engine_->backend().AllocateHostState(); }) {
  thread_ = std::thread([this] { Loop(); });
}

EngineWorker::~EngineWorker() { Stop(); }

absl::Status EngineWorker::Submit(std::shared_ptr<Request> request) {
  absl::MutexLock lock(&mutex_);
  if (stopping_) return absl::UnavailableError("the server is shutting down");
  if (in_flight_ >= options_.max_requests) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the server is running or queueing ", in_flight_,
                     " requests (--max_queued_requests); retry shortly"));
  }
  ++in_flight_;
  waiting_.push_back(std::move(request));
  return absl::OkStatus();
}

void EngineWorker::Run(const std::function<void(Engine&)>& fn) {
  absl::Notification done;
  {
    absl::MutexLock lock(&mutex_);
    if (exited_) {  // no worker thread any more: the engine is ours alone
      fn(*engine_);
      return;
    }
    calls_.push_back([&] {
      fn(*engine_);
      done.Notify();
    });
  }
  done.WaitForNotification();
}

void EngineWorker::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool EngineWorker::TakeWork() {
  std::deque<std::function<void()>> calls;
  std::deque<std::shared_ptr<Request>> arrived;
  bool stopping;
  {
    absl::MutexLock lock(&mutex_);
    auto has_work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mutex_) {
      return stopping_ || !calls_.empty() || !waiting_.empty() || !active_.empty();
    };
    mutex_.Await(absl::Condition(&has_work));
    calls.swap(calls_);
    arrived.swap(waiting_);
    stopping = stopping_;
  }
  for (auto& call : calls) call();
  for (auto& request : arrived) {
    Active active;
    active.id = next_id_++;
    active.request = std::move(request);
    active.sampler = std::make_unique<Sampler>(active.request->sampling);
    active.decoder = std::make_unique<IncrementalDecoder>(tokenizer_);
    active.sampler->Observe(active.request->prompt);
    scheduler_.Add(active.id, static_cast<int64_t>(active.request->prompt.size()),
                   active.request->priority, active.request->arrival);
    const SequenceId id = active.id;
    active_.emplace(id, std::move(active));
  }
  if (stopping) {
    for (auto& [id, active] : active_) Finish(active, FinishReason::kShutdown);
    Reap();
    // Calls that raced with the stop still run, so their callers never wait forever.
    absl::MutexLock lock(&mutex_);
    for (auto& call : calls_) call();
    calls_.clear();
    for (auto& request : waiting_) {
      RequestEvent event;
      event.finished = true;
      event.reason = FinishReason::kShutdown;
      delivery_.Add(request, std::move(event));
    }
    in_flight_ -= static_cast<int64_t>(waiting_.size());
    waiting_.clear();
    exited_ = true;
    delivery_.Flush();
    return false;
  }
  return true;
}

void EngineWorker::Loop() {
  while (TakeWork()) {
    for (const auto& [id, active] : active_) {
      if (active.request->cancelled.load()) scheduler_.Cancel(id);
    }
    const StepPlan plan = scheduler_.Plan(absl::Now());
    for (SequenceId id : plan.admitted) {
      Active& active = active_.at(id);
      active.admitted = true;
      engine_->SetInUse(active.request->session, true);
    }
    for (SequenceId id : plan.cancelled) Finish(active_.at(id), FinishReason::kCancelled);
    RunStep(plan);
    Reap();
    int64_t arriving;
    {
      absl::MutexLock lock(&mutex_);
      arriving = static_cast<int64_t>(waiting_.size());
    }
    metrics_.Queue(scheduler_.running(), scheduler_.waiting() + arriving);
    metrics_.SessionTiers(engine_->TierCounts());
    delivery_.Flush();
  }
}

void EngineWorker::Reap() {
  for (auto it = active_.begin(); it != active_.end();) {
    if (!it->second.done) {
      ++it;
      continue;
    }
    scheduler_.Finish(it->first);
    if (it->second.admitted) engine_->SetInUse(it->second.request->session, false);
    it = active_.erase(it);
  }
}

int64_t EngineWorker::PromptChunk(Active& active, const StepRow& row) {
  const Request& request = *active.request;
  if (row.first == 0 && active.prefilled == 0) UsePrefixCache(active);
  int64_t count =
      std::min(row.count, static_cast<int64_t>(request.prompt.size()) - active.prefilled);
  if (active.checkpoint > active.prefilled) {
    count = std::min(count, active.checkpoint - active.prefilled);
  }
  return count;
}

void EngineWorker::AfterPrefill(Active& active, int64_t count, SampledToken sampled,
                                std::span<const float> logits) {
  Request& request = *active.request;
  if (count > 0) {
    active.prefilled += count;
    scheduler_.Prefilled(active.id, count);
    metrics_.PromptTokens(count);
    absl::StatusOr<PrefixKey> key = engine_->SessionPrefix(request.session);
    if (key.ok() && (active.checkpoint == active.prefilled || prefix_cache_.SeenBefore(*key))) {
      CacheState(active, *key, /*sequence_end=*/false);
    }
  }
  const bool complete = active.prefilled == static_cast<int64_t>(request.prompt.size());
  if (!request.generate) {
    RequestEvent progress;
    progress.prefilled_tokens = active.prefilled;
    progress.session_tokens = engine_->SessionLength(request.session).value_or(0);
    delivery_.Add(active.request, std::move(progress));
    if (complete) Finish(active, FinishReason::kLength);
  } else if (complete) {
    Accept(active, sampled, logits);
    scheduler_.SetDecoding(active.id, active.pending.has_value());
  }
}

void EngineWorker::UsePrefixCache(Active& active) {
  Request& request = *active.request;
  if (!prefix_cache_.enabled() || engine_->SessionLength(request.session).value_or(1) != 0) return;
  // Generation needs the logits after the prompt's last token, so that one is always prefilled.
  const int64_t limit = static_cast<int64_t>(request.prompt.size()) - (request.generate ? 1 : 0);
  std::optional<PrefixCache::Hit> hit = prefix_cache_.Lookup(request.prompt, limit);
  metrics_.PrefixCacheQuery(hit ? hit->key.length : 0);
  if (hit && engine_->StartFromPrefix(request.session, hit->state, hit->key).ok()) {
    active.prefilled = hit->key.length;
    scheduler_.Prefilled(active.id, hit->key.length);
    spdlog::info("[{}] prefix cache: {} of {} prompt tokens from a cached state", request.id,
                 hit->key.length, request.prompt.size());
  }
  if (std::optional<int64_t> branch = prefix_cache_.BranchPoint(request.prompt)) {
    active.checkpoint = *branch;
  }
}

void EngineWorker::CacheState(const Active& active, const PrefixKey& key, bool sequence_end) {
  // Reading a state copies it off the device: only for a state the cache will keep.
  if (!prefix_cache_.Wants(key)) return;
  HostBuffer state = prefix_cache_.Buffer();
  const auto bytes = static_cast<size_t>(engine_->backend().state_layout().Bytes());
  if (engine_->ReadState(active.request->session, {state.get(), bytes}).ok()) {
    prefix_cache_.Insert(key, std::move(state), sequence_end ? active.request->session : 0);
  } else {
    prefix_cache_.Recycle(std::move(state));
  }
  metrics_.PrefixCacheBytes(prefix_cache_.stats().bytes);
}

void EngineWorker::RunStep(const StepPlan& plan) {
  const absl::Time planned = absl::Now();
  // One part per row: a prompt chunk of a prefilling request, the pending token of a decoding one.
  std::vector<StepPart> parts;
  std::vector<Engine::StepInput> inputs;
  std::vector<RowSampling> sampling;
  sampling.reserve(plan.rows.size());  // inputs point into it
  for (const StepRow& row : plan.rows) {
    Active& active = active_.at(row.sequence);
    if (active.done) continue;
    const Request& request = *active.request;
    const bool top_logprobs = request.logprobs && request.top_logprobs > 0;
    if (row.decode) {
      if (!active.pending) continue;
      sampling.push_back(active.sampler->Next());
      inputs.push_back(
          {request.session, {&active.pending->token, 1}, &sampling.back(), top_logprobs});
      parts.push_back({&active, true, 1});
      continue;
    }
    const int64_t count = PromptChunk(active, row);
    if (count <= 0) {  // a cached prefix covered the rest of the prompt
      AfterPrefill(active, 0, {}, {});
      continue;
    }
    const RowSampling* next = nullptr;
    if (request.generate &&
        active.prefilled + count == static_cast<int64_t>(request.prompt.size())) {
      sampling.push_back(active.sampler->Next());
      next = &sampling.back();
    }
    inputs.push_back({request.session, std::span(request.prompt).subspan(active.prefilled, count),
                      next, next != nullptr && top_logprobs});
    parts.push_back({&active, false, count});
  }
  if (inputs.empty()) return;
  int64_t tokens = 0;
  for (const StepPart& part : parts) tokens += part.count;
  const absl::Time start = absl::Now();
  absl::StatusOr<Engine::StepResult> result = engine_->Step(inputs);
  if (result.ok()) {
    const absl::Time stepped = absl::Now();
    metrics_.Step(tokens, absl::ToDoubleSeconds(stepped - start));
    metrics_.CudaGraphs(engine_->backend().recording_counts());
    FinishStep(parts, inputs, *result);
    // Where a slow step's time went: inputs (prefix-cache hits load states), the engine, and
    // the results (streaming tokens, caching states).
    spdlog::debug("step: {} rows, {} tokens; {:.2f} ms inputs, {:.2f} ms engine, {:.2f} ms results",
                  parts.size(), tokens, absl::ToDoubleMilliseconds(start - planned),
                  absl::ToDoubleMilliseconds(stepped - start),
                  absl::ToDoubleMilliseconds(absl::Now() - stepped));
    return;
  }
  // One bad part (a session without a slot, say) must not fail the others: each alone.
  for (size_t i = 0; i < parts.size(); ++i) {
    absl::StatusOr<Engine::StepResult> alone = engine_->Step({&inputs[i], 1});
    if (!alone.ok()) {
      Fail(*parts[i].active, alone.status());
      continue;
    }
    FinishStep({&parts[i], 1}, {&inputs[i], 1}, *alone);
  }
}

void EngineWorker::FinishStep(std::span<const StepPart> parts,
                              std::span<const Engine::StepInput> inputs,
                              const Engine::StepResult& result) {
  const int64_t vocab = engine_->config().vocab_size;
  size_t next_logits = 0;
  int64_t decoded = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    Active& active = *parts[i].active;
    std::span<const float> logits;
    if (inputs[i].host_logits) {
      logits = std::span(result.logits).subspan(next_logits++ * vocab, vocab);
    }
    if (!parts[i].decode) {
      AfterPrefill(active, parts[i].count, result.tokens[i], logits);
      continue;
    }
    ++decoded;
    const TokenOutput committed = *active.pending;
    active.pending.reset();
    ++active.generated;
    Emit(active, committed);
    if (active.done) continue;
    if (active.generated >= active.request->max_new_tokens) {
      Finish(active, FinishReason::kLength);
      continue;
    }
    Accept(active, result.tokens[i], logits);
  }
  metrics_.GenerationTokens(decoded);
}

void EngineWorker::Accept(Active& active, SampledToken sampled, std::span<const float> logits) {
  if (active.sampler->IsStop(sampled.token)) return Finish(active, FinishReason::kStop);
  active.sampler->Observe({&sampled.token, 1});
  active.pending =
      WithLogprobs(sampled, logits, active.request->logprobs, active.request->top_logprobs);
}

void EngineWorker::Emit(Active& active, const TokenOutput& token) {
  const absl::Time now = absl::Now();
  if (active.first_token_time == absl::InfinitePast()) {
    active.first_token_time = now;
    metrics_.FirstToken(absl::ToDoubleSeconds(now - active.request->arrival));
  } else {
    metrics_.InterToken(absl::ToDoubleSeconds(now - active.last_token_time));
  }
  active.last_token_time = now;
  active.held_text += active.decoder->Push(token.token);
  RequestEvent event;
  event.tokens.push_back(token);
  // A stop string ends the stream before it; text that could begin one waits for more.
  size_t stop_at = std::string::npos;
  size_t keep = 0;
  for (const std::string& stop : active.request->stop_strings) {
    stop_at = std::min(stop_at, active.held_text.find(stop));
    for (size_t n = std::min(stop.size() - 1, active.held_text.size()); n > keep; --n) {
      if (active.held_text.compare(active.held_text.size() - n, n, stop, 0, n) == 0) {
        keep = n;
        break;
      }
    }
  }
  if (stop_at != std::string::npos) {
    event.text = active.held_text.substr(0, stop_at);
    active.held_text.clear();
    active.decoder->Finish();  // bytes after the stop string are dropped with it
    delivery_.Add(active.request, std::move(event));
    return Finish(active, FinishReason::kStop);
  }
  event.text = active.held_text.substr(0, active.held_text.size() - keep);
  active.held_text.erase(0, active.held_text.size() - keep);
  delivery_.Add(active.request, std::move(event));
}

void EngineWorker::Finish(Active& active, FinishReason reason) {
  if (active.done) return;
  active.done = true;
  // A sequence end: a replay of this conversation (a stateless client resending it) starts from
  // here. A request on a named session leaves its state in the session itself, so copying it off
  // the device again would buy nothing.
  if (active.request->ephemeral &&
      (reason == FinishReason::kLength || reason == FinishReason::kStop)) {
    absl::StatusOr<PrefixKey> key = engine_->SessionPrefix(active.request->session);
    if (key.ok()) CacheState(active, *key, /*sequence_end=*/true);
  }
  Request& request = *active.request;
  RequestEvent event;
  event.text = active.held_text + active.decoder->Finish();
  event.finished = true;
  event.reason = reason;
  event.session_tokens = engine_->SessionLength(request.session).value_or(0);
  event.first_token_time = active.first_token_time;
  End(active.request, std::move(event));
  metrics_.RequestFinished(ReasonName(reason), active.prefilled, active.generated,
                           absl::ToDoubleSeconds(absl::Now() - request.arrival));
}

void EngineWorker::Fail(Active& active, const absl::Status& error) {
  active.done = true;
  spdlog::error("[{}] failed: {}", active.request->id, error.ToString());
  RequestEvent event;
  event.finished = true;
  event.error = error;
  End(active.request, std::move(event));
  metrics_.RequestFinished("error", active.prefilled, active.generated,
                           absl::ToDoubleSeconds(absl::Now() - active.request->arrival));
}

void EngineWorker::End(const std::shared_ptr<Request>& request, RequestEvent event) {
  {
    absl::MutexLock lock(&mutex_);
    --in_flight_;
  }
  delivery_.Add(request, std::move(event));
}

}  // namespace sympow::server
