// The SentencePiece text tokenizer behind its dlopen'ed shim: training,
// round trips, stored files and clear errors. That this test binary (which
// links LibTorch) runs at all checks the protobuf clash stays contained.
#include <filesystem>

#include <gtest/gtest.h>

#include "loong/core/json_util.h"
#include "loong/text/text_tokenizer.h"
#include "test_util.h"

using loong::test::expect_error;
using loong::test::TempDir;
using namespace loong::text;

namespace {
std::vector<std::string> captions() {
  const char* colours[] = {"red", "blue", "green", "yellow", "white", "orange"};
  const char* items[] = {"sneaker", "bag", "shirt", "dress", "coat", "sandal", "trouser", "pullover"};
  const char* moves[] = {"moves left", "moves up", "drifts slowly to the right", "bounces quickly down"};
  std::vector<std::string> out;
  for (int i = 0; i < 300; ++i)
    out.push_back(std::string("a ") + colours[i % 6] + " " + items[(i / 6) % 8] + " " + moves[(i / 48) % 4] +
                  " on a " + colours[(i + 3) % 6] + " background");
  return out;
}
}  // namespace

#ifdef LOONG_WITH_SENTENCEPIECE

TEST(Text, TrainEncodeDecodeRoundTrip) {
  std::string why;
  ASSERT_TRUE(text_tokenizer_available(&why)) << why;
  TempDir dir;
  TextTrainOptions o;
  o.vocab_size = 40;
  EXPECT_EQ(TextTokenizer::train(captions(), o, dir / "text"), 40);
  EXPECT_TRUE(std::filesystem::exists(dir / "text/text.model"));
  EXPECT_TRUE(std::filesystem::exists(dir / "text/text.json"));
  auto t = TextTokenizer::load(dir / "text");
  EXPECT_EQ(t.vocab_size(), 40);
  const std::string s = "a blue sneaker moves left on a red background";
  auto ids = t.encode(s);
  ASSERT_FALSE(ids.empty());
  EXPECT_LT(ids.size(), s.size() * 4 / 5);  // some pieces are longer than a character
  for (int32_t id : ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 40);
  }
  EXPECT_EQ(t.decode(ids), s);
  EXPECT_TRUE(t.encode("").empty());
  // Words it never saw still encode (pieces, characters or <unk> = 0) and the
  // model file loads directly too.
  auto t2 = TextTokenizer::load(dir / "text/text.model");
  EXPECT_EQ(t2.encode(s), ids);
  EXPECT_FALSE(t2.encode("purple zebra").empty());
  // BPE works too.
  o.model_type = "bpe";
  TextTokenizer::train(captions(), o, dir / "bpe");
  EXPECT_EQ(TextTokenizer::load(dir / "bpe").decode(TextTokenizer::load(dir / "bpe").encode(s)), s);
}

TEST(Text, NamesTheWordsItNeverSaw) {
  TempDir dir;
  TextTrainOptions o;
  o.vocab_size = 40;
  TextTokenizer::train(captions(), o, dir / "text");
  auto t = TextTokenizer::load(dir / "text");
  EXPECT_TRUE(t.unseen_words("A red sneaker, moves left!").size() == 1);  // 'A': no capitals in training
  EXPECT_EQ(t.unseen_words("a purple zebra moves left on a purple background"),
            (std::vector<std::string>{"purple", "zebra"}));
  EXPECT_TRUE(t.unseen_words("a blue bag drifts slowly to the right.").empty());
  EXPECT_EQ(words_of("  \"a (red) sneaker's\tday...\n ,, "), (std::vector<std::string>{"a", "red", "sneaker's", "day"}));
  // A folder from before words were recorded: only characters without a piece count.
  auto info = loong::read_json_file(dir / "text/text.json");
  info.erase("words");
  loong::write_json_file(dir / "text/text.json", info);
  auto old = TextTokenizer::load(dir / "text");
  EXPECT_TRUE(old.unseen_words("a purple sneaker").empty());  // letters it has pieces for
  EXPECT_EQ(old.unseen_words("a red zebra \xe2\x98\x83"), (std::vector<std::string>{"zebra", "\xe2\x98\x83"}));  // no 'z', no snowman
  info["words"] = "red";
  loong::write_json_file(dir / "text/text.json", info);
  expect_error([&] { TextTokenizer::load(dir / "text"); }, {"text.json", "'words'"});
}

TEST(Text, ClearErrors) {
  TempDir dir;
  TextTrainOptions o;
  o.vocab_size = 5000;  // far more pieces than 300 short captions hold: a soft limit
  const int pieces = TextTokenizer::train(captions(), o, dir / "big");
  EXPECT_LT(pieces, 5000);
  EXPECT_EQ(TextTokenizer::load(dir / "big").vocab_size(), pieces);
  o.vocab_size = 10;  // fewer than the characters the captions use
  expect_error([&] { TextTokenizer::train(captions(), o, dir / "small"); }, {"SentencePiece training failed"});
  EXPECT_FALSE(std::filesystem::exists(dir / "small/text.model"));
  o.vocab_size = 40;
  o.model_type = "word2vec";
  expect_error([&] { TextTokenizer::train(captions(), o, dir / "x"); }, {"--model-type", "unigram or bpe"});
  expect_error([&] { TextTokenizer::load(dir / "nothing"); }, {"nothing", "no text tokenizer here"});
  loong::test::write_bytes(dir / "bad.model", "not a model at all");
  expect_error([&] { TextTokenizer::load(dir / "bad.model"); }, {"bad.model", "not a SentencePiece model"});
  try {  // SentencePiece's internals (source file, line, expression) are not shown
    TextTokenizer::load(dir / "bad.model");
  } catch (const loong::Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find(".cc("), std::string::npos) << m;
    EXPECT_EQ(m.find("Internal"), std::string::npos) << m;
  }
  o.model_type = "unigram";
  TextTokenizer::train(captions(), o, dir / "ok");
  auto t = TextTokenizer::load(dir / "ok");
  expect_error([&] { t.decode({3, 40}); }, {"id 40 is outside the text vocabulary [0, 40)"});
}

#else

TEST(Text, SaysItIsMissing) {
  TempDir dir;
  EXPECT_FALSE(text_tokenizer_available());
  expect_error([&] { TextTokenizer::train(captions(), {}, dir / "t"); }, {"LOONG_WITH_SENTENCEPIECE"});
}

#endif
