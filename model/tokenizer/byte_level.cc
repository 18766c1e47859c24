#include "model/tokenizer/byte_level.h"

#include "model/tokenizer/utf8.h"

namespace sympow {

ByteLevelAlphabet::ByteLevelAlphabet() {
  codepoint_to_byte_.fill(-1);
  // Printable Latin-1 bytes keep their code point; the rest take 256, 257, ... in byte order.
  char32_t next_extra = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable =
        (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const char32_t codepoint = printable ? static_cast<char32_t>(b) : next_extra++;
    AppendUtf8(codepoint, &byte_to_text_[b]);
    codepoint_to_byte_[codepoint] = static_cast<int16_t>(b);
  }
}

std::optional<std::string> ByteLevelAlphabet::Decode(absl::string_view token_text) const {
  std::string bytes;
  while (!token_text.empty()) {
    const Utf8Sequence sequence = NextUtf8(token_text);
    if (sequence.status != Utf8Status::kComplete ||
        sequence.codepoint >= codepoint_to_byte_.size() ||
        codepoint_to_byte_[sequence.codepoint] < 0) {
      return std::nullopt;
    }
    bytes.push_back(static_cast<char>(codepoint_to_byte_[sequence.codepoint]));
    token_text.remove_prefix(sequence.length);
  }
  return bytes;
}

}  // namespace sympow
