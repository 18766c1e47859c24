// The prefix-state cache's decisions on plain data (states are heap buffers here).
#include "server/prefix_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

namespace sympow::server {
namespace {

constexpr int64_t kStateBytes = 100;

std::vector<int32_t> Tokens(int first, int count) {
  std::vector<int32_t> tokens(count);
  std::iota(tokens.begin(), tokens.end(), first);
  return tokens;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

HostBuffer NewBuffer() {
  return HostBuffer(new std::byte[kStateBytes], [](std::byte* p) { delete[] p; });
}

HostBuffer State(int tag) {
  HostBuffer state = NewBuffer();
  std::fill_n(state.get(), kStateBytes, std::byte(tag));
  return state;
}

PrefixKey KeyOf(const std::vector<int32_t>& tokens) {
  return PrefixKey{}.Extended(std::span(tokens));
}

TEST(PrefixCache, FindsTheLongestCachedPrefixOfAnyLength) {
  PrefixCache cache({.max_bytes = 10 * kStateBytes, .min_tokens = 4}, kStateBytes, NewBuffer);
  const std::vector<int32_t> system = Tokens(1, 37);  // not a multiple of anything
  const std::vector<int32_t> turn = Concat(system, Tokens(100, 23));
  cache.Insert(KeyOf(system), State(1));
  cache.Insert(KeyOf(turn), State(2));
  const std::vector<int32_t> next = Concat(turn, Tokens(500, 9));
  auto hit = cache.Lookup(next, static_cast<int64_t>(next.size()) - 1);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->key.length, 60);
  EXPECT_EQ(hit->state[0], std::byte(2));
  // A prompt that shares only the system prompt gets that.
  hit = cache.Lookup(Concat(system, Tokens(900, 5)), 100);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->key.length, 37);
  // The limit keeps the last token for the model to see.
  EXPECT_EQ(cache.Lookup(turn, 59)->key.length, 37);
  EXPECT_FALSE(cache.Lookup(Tokens(2, 50), 50).has_value());
  const PrefixCacheStats stats = cache.stats();
  EXPECT_EQ(stats.hits, 3);
  EXPECT_EQ(stats.misses, 1);
  EXPECT_EQ(stats.saved_tokens, 60 + 37 + 37);
}

TEST(PrefixCache, ABranchPointIsWhereANewPromptLeavesARecentOne) {
  PrefixCache cache({.max_bytes = 10 * kStateBytes, .min_tokens = 8}, kStateBytes, NewBuffer);
  const std::vector<int32_t> shared = Tokens(1, 40);
  EXPECT_FALSE(cache.BranchPoint(Concat(shared, Tokens(100, 10))).has_value());  // first sight
  EXPECT_EQ(cache.BranchPoint(Concat(shared, Tokens(200, 10))), 40);
  cache.Insert(KeyOf(shared), State(3));
  EXPECT_FALSE(cache.BranchPoint(Concat(shared, Tokens(300, 10))).has_value());  // cached now
  EXPECT_FALSE(cache.BranchPoint(Tokens(1, 5)).has_value());  // shorter than min_tokens
}

TEST(PrefixCache, ChunkBoundariesAreKeptTheSecondTimeTheyAreSeen) {
  PrefixCache cache({.max_bytes = 10 * kStateBytes, .min_tokens = 8}, kStateBytes, NewBuffer);
  const PrefixKey boundary = KeyOf(Tokens(1, 512));
  EXPECT_FALSE(cache.SeenBefore(boundary));
  EXPECT_TRUE(cache.SeenBefore(boundary));
  EXPECT_FALSE(cache.SeenBefore(KeyOf(Tokens(1, 4))));
}

TEST(PrefixCache, EvictsStaleShortPrefixesFirstAndStaysInItsBudget) {
  PrefixCache cache({.max_bytes = 3 * kStateBytes, .min_tokens = 1}, kStateBytes, NewBuffer);
  const std::vector<int32_t> long_prefix = Tokens(1, 1000), short_prefix = Tokens(5000, 10),
                             other = Tokens(7000, 12);
  cache.Insert(KeyOf(long_prefix), State(1));
  cache.Insert(KeyOf(short_prefix), State(2));
  cache.Insert(KeyOf(other), State(3));
  cache.Insert(KeyOf(Tokens(9000, 11)), State(4));  // one must go: the short, older one
  EXPECT_EQ(cache.stats().bytes, 3 * kStateBytes);
  EXPECT_TRUE(cache.Lookup(long_prefix, 1000).has_value());
  EXPECT_FALSE(cache.Lookup(short_prefix, 10).has_value());
  EXPECT_TRUE(cache.Lookup(other, 12).has_value());
}

TEST(PrefixCache, ASessionsNewSequenceEndReplacesItsPreviousOne) {
  PrefixCache cache({.max_bytes = 10 * kStateBytes, .min_tokens = 1}, kStateBytes, NewBuffer);
  const std::vector<int32_t> turn1 = Tokens(1, 30), turn2 = Concat(turn1, Tokens(100, 30));
  cache.Insert(KeyOf(turn1), State(1), /*owner=*/7);
  cache.Insert(KeyOf(Tokens(500, 20)), State(2), /*owner=*/8);
  cache.Insert(KeyOf(turn2), State(3), /*owner=*/7);
  EXPECT_EQ(cache.stats().entries, 2);
  EXPECT_EQ(cache.Lookup(Concat(turn2, Tokens(900, 3)), 100)->key.length, 60);
  EXPECT_FALSE(cache.Lookup(Concat(turn1, Tokens(900, 3)), 100).has_value());
}

TEST(PrefixCache, ReusesTheBuffersOfEvictedStates) {
  int allocations = 0;
  PrefixCache cache({.max_bytes = 3 * kStateBytes, .min_tokens = 1}, kStateBytes, [&] {
    ++allocations;
    return NewBuffer();
  });
  for (int turn = 0; turn < 50; ++turn) {
    HostBuffer state = cache.Buffer();
    std::fill_n(state.get(), kStateBytes, std::byte(turn));
    cache.Insert(KeyOf(Tokens(1000 * turn, 10 + turn)), std::move(state));
  }
  EXPECT_EQ(cache.stats().entries, 3);
  EXPECT_LE(allocations, 4);  // the budget's three, and one being filled while all three are held
  EXPECT_EQ(cache.Lookup(Tokens(49000, 59), 100)->state[0], std::byte(49));
}

TEST(PrefixCache, ABufferTakenBackIsHandedOutAgain) {
  int allocations = 0;
  PrefixCache cache({.max_bytes = 3 * kStateBytes, .min_tokens = 1}, kStateBytes, [&] {
    ++allocations;
    return NewBuffer();
  });
  HostBuffer unused = cache.Buffer();
  const std::byte* memory = unused.get();
  cache.Recycle(std::move(unused));
  EXPECT_EQ(cache.Buffer().get(), memory);
  EXPECT_EQ(allocations, 1);
}

TEST(PrefixCache, ABudgetBelowOneStateTurnsItOff) {
  PrefixCache cache({.max_bytes = kStateBytes - 1}, kStateBytes, NewBuffer);
  EXPECT_FALSE(cache.enabled());
  cache.Insert(KeyOf(Tokens(1, 100)), State(1));
  EXPECT_FALSE(cache.Lookup(Tokens(1, 100), 100).has_value());
  EXPECT_EQ(cache.stats().misses, 0);  // not counted: there is no cache
}

}  // namespace
}  // namespace sympow::server
