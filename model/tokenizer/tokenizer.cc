#include "model/tokenizer/tokenizer.h"

#include <fstream>
#include <queue>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace sympow {
namespace {

using nlohmann::json;

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// Finds the split pattern a pre_tokenizer spec implies ("" for none); rejects what we cannot run.
absl::Status ReadPretokenizer(const json& spec, std::string* pattern, bool* add_prefix_space) {
  if (spec.is_null()) return absl::OkStatus();
  const std::string type = spec.value("type", "");
  if (type == "Sequence") {
    for (const json& part : spec.value("pretokenizers", json::array())) {
      if (absl::Status status = ReadPretokenizer(part, pattern, add_prefix_space); !status.ok())
        return status;
    }
    return absl::OkStatus();
  }
  std::string found;
  if (type == "ByteLevel") {
    *add_prefix_space = spec.value("add_prefix_space", false);
    if (!spec.value("use_regex", true)) return absl::OkStatus();
    found = std::string(kGpt2SplitPattern);
  } else if (type == "Split") {
    const json& regex = spec.contains("pattern") ? spec["pattern"] : json();
    if (!regex.is_object() || !regex.contains("Regex") || !regex["Regex"].is_string()) {
      return absl::UnimplementedError(
          "pre_tokenizer Split: only a {\"Regex\": ...} pattern is supported");
    }
    if (spec.value("behavior", "") != "Isolated" || spec.value("invert", false)) {
      return absl::UnimplementedError(absl::StrCat("pre_tokenizer Split: behavior '",
                                                   spec.value("behavior", ""),
                                                   "' (or invert) is not supported; Isolated is"));
    }
    found = regex["Regex"].get<std::string>();
  } else {
    return absl::UnimplementedError(
        absl::StrCat("pre_tokenizer type '", type, "' is not supported"));
  }
  if (!pattern->empty())
    return absl::UnimplementedError("more than one split pattern in pre_tokenizer");
  *pattern = found;
  return absl::OkStatus();
}

absl::Status CheckModelOptions(const json& model) {
  if (model.value("type", "BPE") != "BPE") {
    return absl::UnimplementedError(absl::StrCat("model type '", model.value("type", ""),
                                                 "' is not supported (byte-level BPE is)"));
  }
  for (const char* field : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(field) && !model[field].is_null() && model[field] != "") {
      return absl::UnimplementedError(absl::StrCat("model.", field, " is not supported"));
    }
  }
  if (model.value("byte_fallback", false))
    return absl::UnimplementedError("model.byte_fallback is not supported");
  if (model.contains("dropout") && model["dropout"].is_number() &&
      model["dropout"].get<double>() > 0) {
    return absl::UnimplementedError("model.dropout is not supported at inference");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open tokenizer"));
  std::stringstream text;
  text << file.rdbuf();
  return Parse(text.str(), path);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Parse(absl::string_view json_text,
                                                            absl::string_view source) {
  auto fail = [&](const absl::Status& status) {
    return absl::Status(status.code(), absl::StrCat(source, ": ", status.message()));
  };
  const json root = json::parse(json_text, nullptr, false);
  if (root.is_discarded() || !root.is_object())
    return fail(absl::InvalidArgumentError("not a JSON object"));
  if (!root.contains("model") || !root["model"].is_object()) {
    return fail(absl::InvalidArgumentError("missing object 'model'"));
  }
  const json& model = root["model"];
  if (absl::Status status = CheckModelOptions(model); !status.ok()) return fail(status);
  const json normalizer = root.value("normalizer", json());
  // NFC is accepted with text taken as already normalised, as nearly all text is.
  if (!normalizer.is_null() && normalizer.value("type", "") != "NFC") {
    return fail(absl::UnimplementedError(absl::StrCat(
        "normalizer '", normalizer.value("type", normalizer.dump()), "' is not supported")));
  }
  const json decoder = root.value("decoder", json());
  if (!decoder.is_null() && decoder.value("type", "") != "ByteLevel") {
    return fail(absl::UnimplementedError(absl::StrCat(
        "decoder '", decoder.value("type", decoder.dump()), "' is not supported (ByteLevel is)")));
  }

  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  std::string pattern;
  if (absl::Status status = ReadPretokenizer(root.value("pre_tokenizer", json()), &pattern,
                                             &tokenizer->add_prefix_space_);
      !status.ok()) {
    return fail(status);
  }
  if (!pattern.empty()) {
    absl::StatusOr<std::unique_ptr<SplitPretokenizer>> split = SplitPretokenizer::Create(pattern);
    if (!split.ok()) return fail(split.status());
    tokenizer->pretokenizer_ = std::move(*split);
  }

  // The vocabulary: byte-level token text → id.
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return fail(absl::InvalidArgumentError("missing object 'model.vocab'"));
  }
  absl::flat_hash_map<std::string, int32_t> vocab;
  auto set_token = [&](int64_t id, std::string bytes) -> absl::Status {
    if (id < 0 || id > (int64_t{1} << 24))
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " is out of range"));
    if (static_cast<int64_t>(tokenizer->token_bytes_.size()) <= id)
      tokenizer->token_bytes_.resize(id + 1);
    tokenizer->token_bytes_[id] = std::move(bytes);
    return absl::OkStatus();
  };
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_integer())
      return fail(
          absl::InvalidArgumentError(absl::StrCat("vocab['", text, "'] is not an integer id")));
    std::optional<std::string> bytes = tokenizer->alphabet_.Decode(text);
    if (!bytes) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("vocab token '", text, "' has characters outside the byte-level alphabet")));
    }
    if (absl::Status status = set_token(id.get<int64_t>(), *bytes); !status.ok())
      return fail(status);
    vocab[text] = id.get<int32_t>();
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab.find(tokenizer->alphabet_.Encode(static_cast<uint8_t>(b)));
    if (it == vocab.end()) {
      return fail(
          absl::InvalidArgumentError(absl::StrFormat("vocab has no token for byte 0x%02X", b)));
    }
    tokenizer->byte_token_[b] = it->second;
  }

  const json merges = model.value("merges", json::array());
  if (!merges.is_array())
    return fail(absl::InvalidArgumentError("'model.merges' must be an array"));
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& merge = merges[rank];
    std::pair<std::string, std::string> parts;
    if (merge.is_string()) {
      std::vector<std::string> split =
          absl::StrSplit(merge.get<std::string>(), absl::MaxSplits(' ', 1));
      if (split.size() == 2) parts = {split[0], split[1]};
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      parts = {merge[0].get<std::string>(), merge[1].get<std::string>()};
    }
    auto left = vocab.find(parts.first), right = vocab.find(parts.second),
         merged = vocab.find(parts.first + parts.second);
    if (left == vocab.end() || right == vocab.end() || merged == vocab.end()) {
      return fail(absl::InvalidArgumentError(absl::StrCat(
          "merges[", rank, "] ", merge.dump(), " does not join two vocab tokens into a third")));
    }
    tokenizer->merges_.try_emplace(PairKey(left->second, right->second), static_cast<int32_t>(rank),
                                   merged->second);
  }

  std::vector<std::string> added;
  for (const json& token : root.value("added_tokens", json::array())) {
    if (!token.is_object() || !token.contains("id") || !token["id"].is_number_integer() ||
        !token.contains("content") || !token["content"].is_string() || token["content"] == "") {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("added_tokens entry ", token.dump(), " needs an id and content")));
    }
    const std::string content = token["content"].get<std::string>();
    if (absl::Status status = set_token(token["id"].get<int64_t>(), content); !status.ok())
      return fail(status);
    tokenizer->added_tokens_[content] = token["id"].get<int32_t>();
    added.push_back(content);
  }
  if (!added.empty()) {
    // Longest first, so RE2's leftmost-first alternation takes the longest added token.
    std::sort(added.begin(), added.end(),
              [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    std::string alternation;
    for (const std::string& content : added) {
      absl::StrAppend(&alternation, alternation.empty() ? "" : "|", RE2::QuoteMeta(content));
    }
    tokenizer->added_token_regex_ = std::make_unique<RE2>(absl::StrCat("(", alternation, ")"));
  }
  return tokenizer;
}

std::optional<int32_t> Tokenizer::TokenId(absl::string_view added_token) const {
  auto it = added_tokens_.find(added_token);
  if (it == added_tokens_.end()) return std::nullopt;
  return it->second;
}

const std::string& Tokenizer::TokenBytes(int32_t id) const {
  static const std::string kNone;
  return id >= 0 && id < vocab_size() ? token_bytes_[id] : kNone;
}

std::vector<int32_t> Tokenizer::Encode(absl::string_view text) const {
  std::vector<int32_t> ids;
  auto encode_plain = [&](absl::string_view segment) {
    if (segment.empty()) return;
    std::string prefixed;
    if (add_prefix_space_ && segment.front() != ' ') {
      prefixed = absl::StrCat(" ", segment);
      segment = prefixed;
    }
    if (pretokenizer_ == nullptr) return EncodePiece(segment, &ids);
    for (absl::string_view piece : pretokenizer_->Split(segment)) EncodePiece(piece, &ids);
  };
  re2::StringPiece rest(text.data(), text.size());
  re2::StringPiece special;
  while (added_token_regex_ != nullptr && !rest.empty()) {
    const re2::StringPiece before = rest;
    if (!RE2::FindAndConsume(&rest, *added_token_regex_, &special)) break;
    encode_plain(absl::string_view(before.data(), special.data() - before.data()));
    ids.push_back(added_tokens_.at(std::string(special.data(), special.size())));
  }
  encode_plain(absl::string_view(rest.data(), rest.size()));
  return ids;
}

void Tokenizer::EncodePiece(absl::string_view piece, std::vector<int32_t>* ids) const {
  // A doubly linked list of symbols, merged lowest rank first through a heap of candidate pairs;
  // stale heap entries (a side already merged away) are skipped. O(n log n) in the piece length.
  struct Symbol {
    int32_t token;
    int32_t prev, next;
  };
  std::vector<Symbol> symbols(piece.size());
  for (size_t i = 0; i < piece.size(); ++i) {
    symbols[i] = {byte_token_[static_cast<uint8_t>(piece[i])], static_cast<int32_t>(i) - 1,
                  i + 1 < piece.size() ? static_cast<int32_t>(i + 1) : -1};
  }
  struct Candidate {
    int32_t rank, left, left_token, right_token;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto consider = [&](int32_t left) {
    if (left < 0 || symbols[left].next < 0) return;
    const Symbol& l = symbols[left];
    auto it = merges_.find(PairKey(l.token, symbols[l.next].token));
    if (it != merges_.end()) heap.push({it->second.first, left, l.token, symbols[l.next].token});
  };
  for (size_t i = 0; i + 1 < piece.size(); ++i) consider(static_cast<int32_t>(i));
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& left = symbols[c.left];
    if (left.token != c.left_token || left.next < 0 || symbols[left.next].token != c.right_token)
      continue;
    Symbol& right = symbols[left.next];
    left.token = merges_.at(PairKey(c.left_token, c.right_token)).second;
    right.token = -1;  // merged away
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    consider(left.prev);
    consider(c.left);
  }
  for (int32_t i = piece.empty() ? -1 : 0; i >= 0; i = symbols[i].next)
    ids->push_back(symbols[i].token);
}

absl::StatusOr<std::string> Tokenizer::Decode(std::span<const int32_t> ids) const {
  std::string bytes;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size() || token_bytes_[ids[i]].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("ids[", i, "] = ", ids[i], " is not a token"));
    }
    bytes += token_bytes_[ids[i]];
  }
  return bytes;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerForModel(const std::string& model_dir,
                                                                 int64_t model_vocab_size) {
  const std::string path = model_dir + "/tokenizer.json";
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::Load(path);
  if (!tokenizer.ok()) return tokenizer.status();
  if ((*tokenizer)->vocab_size() > model_vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": has token ids up to ", (*tokenizer)->vocab_size() - 1,
                     " but the model's vocab_size is ", model_vocab_size));
  }
  return tokenizer;
}

}  // namespace sympow
