#include "model/tokenizer/incremental_decoder.h"

#include "model/tokenizer/utf8.h"

namespace sympow {

std::string IncrementalDecoder::Push(int32_t token) {
  pending_ += tokenizer_.TokenBytes(token);
  return Drain(/*final=*/false);
}

std::string IncrementalDecoder::Finish() { return Drain(/*final=*/true); }

std::string IncrementalDecoder::Drain(bool final) {
  std::string out;
  pending_.erase(0, AppendValidUtf8(pending_, /*hold_incomplete_tail=*/!final, &out));
  return out;
}

}  // namespace sympow
