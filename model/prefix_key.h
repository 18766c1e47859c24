// A key for a token prefix: two independent 64-bit rolling hashes of the tokens and their count,
// extended token by token, so a session's key after n tokens and the key of any prompt's first n
// tokens are equal exactly when the tokens are (up to a 2^-128 chance).
#pragma once

#include <cstdint>
#include <span>

namespace sympow {

struct PrefixKey {
  uint64_t first = 0;
  uint64_t second = 0;
  int64_t length = 0;

  bool operator==(const PrefixKey&) const = default;

  PrefixKey Extended(int32_t token) const {
    const uint64_t t = static_cast<uint32_t>(token) + 1;
    return {Mix(first * 0x9e3779b97f4a7c15ull + t), Mix(second ^ (t * 0xc2b2ae3d27d4eb4full)) + 1,
            length + 1};
  }
  PrefixKey Extended(std::span<const int32_t> tokens) const {
    PrefixKey key = *this;
    for (int32_t token : tokens) key = key.Extended(token);
    return key;
  }

  template <typename H>
  friend H AbslHashValue(H h, const PrefixKey& key) {
    return H::combine(std::move(h), key.first, key.second, key.length);
  }

 private:
  // splitmix64's finaliser: every input bit reaches every output bit.
  static uint64_t Mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }
};

}  // namespace sympow
