#include "server/prefix_cache.h"

#include <algorithm>

namespace sympow::server {

PrefixCache::PrefixCache(PrefixCacheOptions options, int64_t state_bytes,
                         std::function<HostBuffer()> allocate)
    : options_(options), state_bytes_(state_bytes), allocate_(std::move(allocate)) {}

std::optional<PrefixCache::Hit> PrefixCache::Lookup(std::span<const int32_t> tokens,
                                                    int64_t limit) {
  if (!enabled()) return std::nullopt;
  limit = std::min<int64_t>(limit, static_cast<int64_t>(tokens.size()));
  int64_t longest_cached = 0;
  for (const auto& [length, count] : lengths_) longest_cached = std::max(longest_cached, length);
  limit = std::min(limit, longest_cached);
  std::optional<Hit> best;
  PrefixKey key;
  for (int64_t i = 0; i < limit; ++i) {
    key = key.Extended(tokens[i]);
    if (!lengths_.contains(key.length)) continue;
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      best = Hit{key, {it->second.state.get(), static_cast<size_t>(state_bytes_)}};
    }
  }
  if (!best) {
    ++misses_;
    return std::nullopt;
  }
  entries_.at(best->key).last_used = ++clock_;
  ++hits_;
  saved_tokens_ += best->key.length;
  return best;
}

std::optional<int64_t> PrefixCache::BranchPoint(std::span<const int32_t> tokens) {
  if (!enabled()) return std::nullopt;
  int64_t shared = 0;
  for (const std::vector<int32_t>& seen : recent_) {
    const auto end = tokens.begin() + std::min(tokens.size(), seen.size());
    shared = std::max<int64_t>(
        shared, std::mismatch(tokens.begin(), end, seen.begin()).first - tokens.begin());
  }
  recent_.emplace_front(tokens.begin(), tokens.end());
  if (static_cast<int64_t>(recent_.size()) > options_.recent_prompts) recent_.pop_back();
  if (shared < options_.min_tokens) return std::nullopt;
  if (entries_.contains(PrefixKey{}.Extended(tokens.first(shared)))) return std::nullopt;
  return shared;
}

bool PrefixCache::SeenBefore(const PrefixKey& key) {
  if (!enabled() || key.length < options_.min_tokens) return false;
  // Bounded like the cache: sightings are forgotten wholesale when they outgrow it.
  if (static_cast<int64_t>(boundaries_seen_.size()) > 64 * options_.recent_prompts)
    boundaries_seen_.clear();
  return boundaries_seen_[key]++ > 0;
}

bool PrefixCache::Wants(const PrefixKey& key) const {
  return enabled() && key.length >= options_.min_tokens && !entries_.contains(key);
}

HostBuffer PrefixCache::Buffer() {
  if (free_buffers_.empty()) return allocate_();
  HostBuffer buffer = std::move(free_buffers_.back());
  free_buffers_.pop_back();
  return buffer;
}

void PrefixCache::Recycle(HostBuffer buffer) { free_buffers_.push_back(std::move(buffer)); }

void PrefixCache::Insert(const PrefixKey& key, HostBuffer state, uint64_t owner) {
  if (!Wants(key)) {
    free_buffers_.push_back(std::move(state));
    return;
  }
  if (owner != 0) {
    if (auto previous = latest_end_.find(owner); previous != latest_end_.end()) {
      Erase(previous->second);
    }
    latest_end_[owner] = key;
  }
  while ((static_cast<int64_t>(entries_.size()) + 1) * state_bytes_ > options_.max_bytes) {
    EvictOne();
  }
  entries_.insert_or_assign(key, Entry{std::move(state), ++clock_});
  ++lengths_[key.length];
}

void PrefixCache::EvictOne() {
  // Lowest tokens-saved-per-byte, discounted by how long ago the entry was last useful.
  auto score = [&](const Entry& entry, int64_t length) {
    return static_cast<double>(length) / (1.0 + static_cast<double>(clock_ - entry.last_used));
  };
  auto victim =
      std::min_element(entries_.begin(), entries_.end(), [&](const auto& a, const auto& b) {
        return score(a.second, a.first.length) < score(b.second, b.first.length);
      });
  Erase(victim->first);
}

void PrefixCache::Erase(const PrefixKey& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  free_buffers_.push_back(std::move(it->second.state));
  entries_.erase(it);
  if (--lengths_[key.length] == 0) lengths_.erase(key.length);
}

PrefixCacheStats PrefixCache::stats() const {
  return {hits_, misses_, saved_tokens_, static_cast<int64_t>(entries_.size()),
          static_cast<int64_t>(entries_.size()) * state_bytes_};
}

}  // namespace sympow::server
