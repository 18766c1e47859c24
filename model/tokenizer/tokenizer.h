// A Hugging Face tokenizer.json of the byte-level BPE kind (GPT-2, Llama-3, Qwen style):
// encode text to token ids and decode ids back to the exact bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/tokenizer/byte_level.h"
#include "model/tokenizer/pretokenizer.h"
#include "re2/re2.h"

namespace sympow {

class Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path);
  // `source` names the file in error messages.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Parse(absl::string_view json,
                                                          absl::string_view source);

  // Any bytes, valid UTF-8 or not. Added tokens (e.g. <|endoftext|>) in the text become their ids.
  std::vector<int32_t> Encode(absl::string_view text) const;
  // The exact bytes of the tokens; ids outside the vocabulary are an error.
  absl::StatusOr<std::string> Decode(std::span<const int32_t> ids) const;
  // The bytes of one token (empty for an id no token has).
  const std::string& TokenBytes(int32_t id) const;

  // One past the largest id.
  int64_t vocab_size() const { return static_cast<int64_t>(token_bytes_.size()); }
  std::optional<int32_t> TokenId(absl::string_view added_token) const;

 private:
  Tokenizer() = default;
  void EncodePiece(absl::string_view piece, std::vector<int32_t>* ids) const;

  ByteLevelAlphabet alphabet_;
  std::unique_ptr<SplitPretokenizer> pretokenizer_;
  bool add_prefix_space_ = false;
  std::array<int32_t, 256> byte_token_{};  // the single-byte token of each byte
  // (left, right) → merge rank and the merged token.
  absl::flat_hash_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  std::vector<std::string> token_bytes_;
  absl::flat_hash_map<std::string, int32_t> added_tokens_;
  std::unique_ptr<RE2> added_token_regex_;  // longest-first alternation of the added tokens
};

// A model directory's tokenizer.json, checked to fit the model: every token id must be a row of the
// embedding (a model may have more rows than tokens: vocabularies are often padded).
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerForModel(const std::string& model_dir,
                                                                 int64_t model_vocab_size);

}  // namespace sympow
