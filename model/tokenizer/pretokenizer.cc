#include "model/tokenizer/pretokenizer.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "model/tokenizer/utf8.h"

namespace sympow {
namespace {

constexpr absl::string_view kLookahead = R"(\s+(?!\S))";
// The members of Unicode White_Space, for use inside a character class.
constexpr absl::string_view kWhitespaceMembers =
    R"(\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Rewrites \s and \S (inside and outside classes) to Unicode White_Space; RE2's are ASCII only.
std::string UnicodeWhitespace(absl::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[++i];
      if (next == 's') {
        absl::StrAppend(&out,
                        in_class ? kWhitespaceMembers : absl::StrCat("[", kWhitespaceMembers, "]"));
      } else if (next == 'S' && !in_class) {
        absl::StrAppend(&out, "[^", kWhitespaceMembers, "]");
      } else {
        out.push_back(c);
        out.push_back(next);
      }
      continue;
    }
    if (c == '[') in_class = true;
    if (c == ']') in_class = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SplitPretokenizer>> SplitPretokenizer::Create(
    absl::string_view pattern) {
  std::string rewritten(pattern);
  int lookahead_group = 0;
  if (size_t at = rewritten.find(std::string(kLookahead)); at != std::string::npos) {
    rewritten.replace(at, kLookahead.size(), R"((\s+))");
    lookahead_group = 1;
  }
  for (absl::string_view lookaround : {"(?=", "(?!", "(?<=", "(?<!"}) {
    if (rewritten.find(std::string(lookaround)) != std::string::npos) {
      return absl::UnimplementedError(
          absl::StrCat("split pattern uses lookaround '", lookaround,
                       "', which only in the form \\s+(?!\\S) is supported"));
    }
  }
  auto regex = std::make_unique<RE2>(UnicodeWhitespace(rewritten), RE2::Quiet);
  if (!regex->ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("split pattern does not compile: ", regex->error()));
  }
  if (regex->NumberOfCapturingGroups() != lookahead_group) {
    return absl::UnimplementedError("split pattern has capturing groups; use (?:...)");
  }
  return std::unique_ptr<SplitPretokenizer>(
      new SplitPretokenizer(std::move(regex), lookahead_group));
}

std::vector<absl::string_view> SplitPretokenizer::Split(absl::string_view text) const {
  std::vector<absl::string_view> pieces;
  re2::StringPiece match[2];
  const re2::StringPiece input(text.data(), text.size());
  size_t position = 0;
  while (position < text.size()) {
    if (!regex_->Match(input, position, text.size(), RE2::UNANCHORED, match,
                       1 + lookahead_group_) ||
        match[0].empty()) {
      pieces.push_back(text.substr(position));
      break;
    }
    const size_t begin = match[0].data() - text.data();
    size_t end = begin + match[0].size();
    if (begin > position) pieces.push_back(text.substr(position, begin - position));
    if (lookahead_group_ != 0 && match[1].data() != nullptr && end < text.size()) {
      const Utf8Sequence next = NextUtf8(text.substr(end));
      const bool followed_by_space =
          next.status == Utf8Status::kComplete && IsUnicodeWhitespace(next.codepoint);
      if (!followed_by_space) {
        // Give back the run's last character, unless that would leave nothing (then `\s+`, the
        // alternative after the lookahead in every pattern that uses it, matches the same).
        size_t last = begin;
        for (size_t i = begin; i < end; i += NextUtf8(text.substr(i, end - i)).length) last = i;
        if (last > begin) end = last;
      }
    }
    pieces.push_back(text.substr(begin, end - begin));
    position = end;
  }
  return pieces;
}

}  // namespace sympow
