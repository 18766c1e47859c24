// UTF-8 helpers for the tokenizer: classify the sequence at a position, encode code points.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace sympow {

enum class Utf8Status { kComplete, kIncomplete, kInvalid };

struct Utf8Sequence {
  Utf8Status status;
  int length;          // bytes of a complete sequence; 1 for an invalid byte
  char32_t codepoint;  // valid for kComplete
};

// Classifies the sequence starting at text[0]: complete (with its code point), a valid prefix
// cut off by the end of `text`, or invalid (overlong, surrogate, out of range, stray byte).
Utf8Sequence NextUtf8(absl::string_view text);

void AppendUtf8(char32_t codepoint, std::string* out);

// Appends `bytes` to `out` as valid UTF-8: bytes that can never be text become U+FFFD. A character
// cut off at the end is held back when `hold_incomplete_tail` (more bytes may complete it), else
// replaced. Returns how many bytes of `bytes` were consumed.
size_t AppendValidUtf8(absl::string_view bytes, bool hold_incomplete_tail, std::string* out);
// `bytes` as valid UTF-8, every invalid or cut-off sequence replaced by U+FFFD.
std::string ToValidUtf8(absl::string_view bytes);

// Unicode White_Space, the set a Hugging Face pattern's \s means.
bool IsUnicodeWhitespace(char32_t codepoint);

}  // namespace sympow
