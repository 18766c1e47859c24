#include "model/tokenizer/utf8.h"

namespace sympow {

Utf8Sequence NextUtf8(absl::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(0);
  if (lead < 0x80) return {Utf8Status::kComplete, 1, lead};
  int length;
  char32_t codepoint;
  uint8_t low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    codepoint = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    codepoint = lead & 0x0F;
    if (lead == 0xE0) low = 0xA0;   // no overlong forms
    if (lead == 0xED) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    codepoint = lead & 0x07;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;  // nothing above U+10FFFF
  } else {
    return {Utf8Status::kInvalid, 1, 0};
  }
  for (int i = 1; i < length; ++i) {
    if (static_cast<size_t>(i) >= text.size()) return {Utf8Status::kIncomplete, i, 0};
    const uint8_t next = byte(i);
    if (next < (i == 1 ? low : 0x80) || next > (i == 1 ? high : 0xBF))
      return {Utf8Status::kInvalid, 1, 0};
    codepoint = (codepoint << 6) | (next & 0x3F);
  }
  return {Utf8Status::kComplete, length, codepoint};
}

void AppendUtf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

size_t AppendValidUtf8(absl::string_view bytes, bool hold_incomplete_tail, std::string* out) {
  constexpr char32_t kReplacementCharacter = 0xFFFD;
  absl::string_view rest = bytes;
  while (!rest.empty()) {
    const Utf8Sequence sequence = NextUtf8(rest);
    if (sequence.status == Utf8Status::kIncomplete && hold_incomplete_tail) break;
    if (sequence.status == Utf8Status::kComplete) {
      out->append(rest.data(), sequence.length);
      rest.remove_prefix(sequence.length);
    } else {
      AppendUtf8(kReplacementCharacter, out);
      rest.remove_prefix(sequence.status == Utf8Status::kIncomplete ? rest.size() : 1);
    }
  }
  return bytes.size() - rest.size();
}

std::string ToValidUtf8(absl::string_view bytes) {
  std::string out;
  AppendValidUtf8(bytes, /*hold_incomplete_tail=*/false, &out);
  return out;
}

bool IsUnicodeWhitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

}  // namespace sympow
