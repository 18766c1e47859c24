#include "model/tokenizer/incremental_decoder.h"

#include "model/tokenizer/utf8.h"

namespace sympow {

constexpr char32_t kReplacementCharacter = 0xFFFD;

std::string IncrementalDecoder::Push(int32_t token) {
  pending_ += tokenizer_.TokenBytes(token);
  return Drain(/*final=*/false);
}

std::string IncrementalDecoder::Finish() { return Drain(/*final=*/true); }

std::string IncrementalDecoder::Drain(bool final) {
  std::string out;
  absl::string_view rest = pending_;
  while (!rest.empty()) {
    const Utf8Sequence sequence = NextUtf8(rest);
    if (sequence.status == Utf8Status::kIncomplete && !final) break;
    if (sequence.status == Utf8Status::kComplete) {
      out.append(rest.data(), sequence.length);
      rest.remove_prefix(sequence.length);
    } else {
      AppendUtf8(kReplacementCharacter, &out);
      rest.remove_prefix(sequence.status == Utf8Status::kIncomplete ? rest.size() : 1);
    }
  }
  pending_ = std::string(rest);
  return out;
}

}  // namespace sympow
