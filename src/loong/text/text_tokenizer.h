// Text tokenizer: a SentencePiece model trained on the captions
// (`loong text train`). Stored as a folder: text.model (SentencePiece's
// serialized model) and text.json (vocabulary size, model type, source).
// SentencePiece itself lives behind a dlopen'ed shim (spm_shim.cpp explains
// why); without LOONG_WITH_SENTENCEPIECE every entry point says so.
#pragma once
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace loong::text {

struct TextTrainOptions {
  int vocab_size = 512;
  std::string model_type = "unigram";  // "unigram" or "bpe"
  std::string source;                   // recorded in text.json (e.g. the manifest)
};

class TextTokenizer {
 public:
  // Trains on `sentences` and writes out_dir/text.model and text.json, each
  // atomically; returns the number of pieces, which is at most o.vocab_size
  // (fewer when the sentences hold fewer). Errors (a vocabulary smaller than
  // the characters used, ...) name what to change.
  static int train(const std::vector<std::string>& sentences, const TextTrainOptions& o, const std::string& out_dir);
  // `path`: the folder, or a .model file.
  static TextTokenizer load(const std::string& path);

  std::vector<int32_t> encode(const std::string& text) const;
  // The words of `text` the tokenizer never saw in training, each once, in
  // order: those absent from the training sentences (text.json records them
  // when there are at most kMaxRecordedWords) and those with characters it has
  // no piece for (<unk>). They still tokenise, into pieces the language model
  // learned nothing about together.
  std::vector<std::string> unseen_words(const std::string& text) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  int vocab_size() const { return vocab_size_; }
  const std::string& path() const { return path_; }

 private:
  std::shared_ptr<void> handle_;
  std::shared_ptr<const std::set<std::string>> words_;  // the training sentences' words; null if not recorded
  int vocab_size_ = 0;
  std::string path_;
};

// Words of the training sentences recorded in text.json up to this many.
constexpr size_t kMaxRecordedWords = 100000;

// A text's words: split at white space, punctuation at either end dropped.
std::vector<std::string> words_of(const std::string& text);

// The number of pieces recorded in DIR/text.json, read without SentencePiece
// (for vocabulary checks in builds or places that do not tokenise). Throws
// loong::Error naming DIR when it is not a text tokenizer folder.
int recorded_vocab_size(const std::string& dir);

// Whether this build can train and load text tokenizers (SentencePiece on
// and its shim found); `why` says what is missing otherwise.
bool text_tokenizer_available(std::string* why = nullptr);

}  // namespace loong::text
