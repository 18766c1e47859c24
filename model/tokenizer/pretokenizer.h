// Splits text into pieces with a Hugging Face split pattern, run through RE2.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "re2/re2.h"

namespace sympow {

// GPT-2's pattern, used by a ByteLevel pre-tokenizer with use_regex = true.
inline constexpr absl::string_view kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// RE2 has no lookaround, so the one lookahead these patterns use, `\s+(?!\S)`, is emulated: the
// whitespace run is matched whole and, when a non-space follows, its last character is given back
// (what a backtracking engine does). `\s` means Unicode White_Space, as in the Rust engine the
// patterns were written for. Every byte of the input lands in some piece: stretches the pattern
// does not match (invalid UTF-8 among them) become pieces of their own.
class SplitPretokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<SplitPretokenizer>> Create(absl::string_view pattern);

  std::vector<absl::string_view> Split(absl::string_view text) const;

 private:
  explicit SplitPretokenizer(std::unique_ptr<RE2> regex, int lookahead_group)
      : regex_(std::move(regex)), lookahead_group_(lookahead_group) {}

  std::unique_ptr<RE2> regex_;
  int lookahead_group_;  // capture group of the emulated `\s+(?!\S)`, or 0 when absent
};

}  // namespace sympow
