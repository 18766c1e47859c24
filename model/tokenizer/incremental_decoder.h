// Streams token text without ever splitting a UTF-8 character: bytes of an unfinished character
// wait for the next token; bytes that can never form one are replaced by U+FFFD.
#pragma once

#include <cstdint>
#include <string>

#include "model/tokenizer/tokenizer.h"

namespace sympow {

class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  // The text that token completes (valid UTF-8, possibly empty).
  std::string Push(int32_t token);
  // What is still held back, at the end of a stream.
  std::string Finish();

 private:
  std::string Drain(bool final);

  const Tokenizer& tokenizer_;
  std::string pending_;
};

}  // namespace sympow
