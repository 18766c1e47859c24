// GPT-2's byte-level alphabet: each byte maps to one printable code point, reversibly.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace sympow {

class ByteLevelAlphabet {
 public:
  ByteLevelAlphabet();

  // The UTF-8 text of byte b's code point.
  const std::string& Encode(uint8_t b) const { return byte_to_text_[b]; }
  // Maps a token's text back to its bytes; nullopt when a character is outside the alphabet.
  std::optional<std::string> Decode(absl::string_view token_text) const;

 private:
  std::array<std::string, 256> byte_to_text_;
  std::array<int16_t, 324> codepoint_to_byte_;  // every code point used is below 324
};

}  // namespace sympow
