#include "model/tokenizer/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include "model/tokenizer/incremental_decoder.h"
#include "model/tokenizer/utf8.h"
#include "nlohmann/json.hpp"

namespace sympow {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::string BundledTokenizerPath() {
  return std::string(SYMPOW_SOURCE_DIR) + "/models/sympow-tiny/tokenizer.json";
}

const Tokenizer& Bundled() {
  static const std::unique_ptr<Tokenizer> tokenizer =
      Tokenizer::Load(BundledTokenizerPath()).value();
  return *tokenizer;
}

// A GPT-2 style tokenizer (ByteLevel with its built-in regex) over bytes plus a few merges.
json Gpt2StyleSpec() {
  const ByteLevelAlphabet alphabet;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[alphabet.Encode(static_cast<uint8_t>(b))] = b;
  const std::string space = alphabet.Encode(' ');
  vocab[space + "t"] = 256;
  vocab["he"] = 257;
  vocab[space + "the"] = 258;
  return {
      {"model",
       {{"type", "BPE"}, {"vocab", vocab}, {"merges", {space + " t", "h e", space + "t he"}}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens", {{{"id", 300}, {"content", "<|endoftext|>"}}}}};
}

std::string ParseError(const json& spec) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> parsed =
      Tokenizer::Parse(spec.dump(), "tokenizer.json");
  return parsed.ok() ? "" : std::string(parsed.status().message());
}

TEST(Tokenizer, MatchesThePythonTrainersEncoder) {
  const char* cases_path = std::getenv("SYMPOW_TOKENIZER_CASES");
  ASSERT_NE(cases_path, nullptr) << "run through ctest";
  std::ifstream in(cases_path);
  const json cases = json::parse(in);
  ASSERT_GT(cases["cases"].size(), 10u);
  for (const json& c : cases["cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(Bundled().Encode(text), c["ids"].get<std::vector<int32_t>>()) << text;
  }
}

TEST(Tokenizer, DecodesToTheExactText) {
  const std::string text = "In the beginning, 東京 🎉 <|endoftext|> \t\n end";
  EXPECT_EQ(Bundled().Decode(Bundled().Encode(text)).value(), text);
  EXPECT_EQ(Bundled().Encode("<|endoftext|>"),
            std::vector<int32_t>{Bundled().TokenId("<|endoftext|>").value()});
}

TEST(Tokenizer, AnyByteStringRoundTrips) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes(rng() % 64, '\0');
    for (char& b : bytes) b = static_cast<char>(rng() % 256);
    if (trial % 3 == 0) bytes += " the quick \xE2\x82 brown \xF0\x9F";  // truncated sequences
    const std::vector<int32_t> ids = Bundled().Encode(bytes);
    EXPECT_EQ(Bundled().Decode(ids).value(), bytes) << "trial " << trial;
  }
}

TEST(Tokenizer, LongRunsEncodeQuickly) {
  const std::string run(200000, ' ');
  EXPECT_EQ(Bundled().Decode(Bundled().Encode(run + "x")).value(), run + "x");
}

TEST(Tokenizer, Gpt2StyleByteLevelRegexAndMerges) {
  std::unique_ptr<Tokenizer> t = Tokenizer::Parse(Gpt2StyleSpec().dump(), "gpt2").value();
  // " the" merges fully; "  the" keeps one space apart (the lookahead gives it back).
  EXPECT_EQ(t->Encode(" the"), std::vector<int32_t>{258});
  EXPECT_EQ(t->Encode("  the"), (std::vector<int32_t>{' ', 258}));
  EXPECT_EQ(t->Encode("the<|endoftext|>"), (std::vector<int32_t>{'t', 257, 300}));
  EXPECT_EQ(t->vocab_size(), 301);
  EXPECT_THAT(std::string(t->Decode(std::vector<int32_t>{299}).status().message()),
              HasSubstr("ids[0] = 299 is not a token"));
}

TEST(Tokenizer, RejectsMalformedOrUnsupportedFiles) {
  EXPECT_THAT(ParseError(json::array()), HasSubstr("tokenizer.json: not a JSON object"));
  json spec = Gpt2StyleSpec();
  spec["model"]["type"] = "WordPiece";
  EXPECT_THAT(ParseError(spec), HasSubstr("model type 'WordPiece' is not supported"));
  spec = Gpt2StyleSpec();
  spec["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_THAT(ParseError(spec), HasSubstr("normalizer 'Lowercase' is not supported"));
  spec = Gpt2StyleSpec();
  spec["pre_tokenizer"] = {{"type", "Metaspace"}};
  EXPECT_THAT(ParseError(spec), HasSubstr("pre_tokenizer type 'Metaspace' is not supported"));
  spec = Gpt2StyleSpec();
  spec["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(?=x)a"}}}, {"behavior", "Isolated"}};
  EXPECT_THAT(ParseError(spec), HasSubstr("lookaround '(?='"));
  spec = Gpt2StyleSpec();
  spec["model"]["merges"].push_back("zz q");
  EXPECT_THAT(ParseError(spec), HasSubstr("merges[3] \"zz q\" does not join two vocab tokens"));
  spec = Gpt2StyleSpec();
  spec["model"]["vocab"].erase(ByteLevelAlphabet().Encode('a'));
  EXPECT_THAT(ParseError(spec), HasSubstr("vocab has no token for byte 0x61"));
  spec = Gpt2StyleSpec();
  spec["model"]["byte_fallback"] = true;
  EXPECT_THAT(ParseError(spec), HasSubstr("model.byte_fallback is not supported"));
  EXPECT_EQ(Tokenizer::Load("/nonexistent/tokenizer.json").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(IncrementalDecoder, NeverSplitsACharacter) {
  const std::string text = "héllo 東京 🎉🚀 done";
  IncrementalDecoder decoder(Bundled());
  std::string streamed;
  for (unsigned char byte : text) {
    // Feed single-byte tokens so multi-byte characters arrive in pieces.
    const std::string piece =
        decoder.Push(Bundled().Encode(std::string(1, static_cast<char>(byte)))[0]);
    for (absl::string_view rest = piece; !rest.empty(); rest.remove_prefix(NextUtf8(rest).length)) {
      ASSERT_EQ(NextUtf8(rest).status, Utf8Status::kComplete) << "broken UTF-8 mid-stream";
    }
    streamed += piece;
  }
  streamed += decoder.Finish();
  EXPECT_EQ(streamed, text);
}

TEST(IncrementalDecoder, ReplacesBytesThatCanNeverBeText) {
  IncrementalDecoder decoder(Bundled());
  std::string out = decoder.Push(Bundled().Encode("\xFF")[0]);
  out += decoder.Push(Bundled().Encode("a")[0]);
  out += decoder.Push(Bundled().Encode("\xE2")[0]);
  out += decoder.Finish();  // a truncated character at the end of the stream
  EXPECT_EQ(out,
            "\xEF\xBF\xBD"
            "a"
            "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace sympow
