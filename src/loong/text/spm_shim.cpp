// The only translation unit that includes SentencePiece. It is built as its
// own shared object (libloong_spm.so) and opened by text_tokenizer.cpp with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND): Debian's libsentencepiece bundles
// protobuf-lite and exports its symbols, which would otherwise interpose over
// the libprotobuf that LibTorch loads and crash the process before main()
// (docs/build.md). A plain C interface crosses the boundary; errors come back
// as text in a caller-owned buffer.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "loong/text/spm_shim.h"

namespace {

void set_error(char* err, size_t len, const std::string& what) {
  if (!err || len == 0) return;
  std::strncpy(err, what.c_str(), len - 1);
  err[len - 1] = '\0';
}

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  VectorIterator(const char* const* s, size_t n) : s_(s), n_(n) { load(); }
  bool done() const override { return i_ >= n_; }
  void Next() override {
    ++i_;
    load();
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  void load() {
    if (i_ < n_) value_ = s_[i_];
  }
  const char* const* s_;
  size_t n_, i_ = 0;
  std::string value_;
};

}  // namespace

extern "C" {

int loong_spm_train(const char* const* sentences, size_t count, int vocab_size, const char* model_type,
                    char** model_out, size_t* model_len, char* err, size_t err_len) {
  try {
    VectorIterator it(sentences, count);
    std::unordered_map<std::string, std::string> args = {
        {"vocab_size", std::to_string(vocab_size)},
        {"model_type", model_type},
        {"character_coverage", "1.0"},
        // A soft limit: captions of a small world may hold fewer pieces than
        // asked for; the model then has fewer (text.json records how many).
        {"hard_vocab_limit", "false"},
        // The model's own special tokens live outside the text vocabulary
        // (lm/vocab.h); SentencePiece keeps only <unk>.
        {"bos_id", "-1"},
        {"eos_id", "-1"},
        {"pad_id", "-1"},
        {"unk_id", "0"},
        {"num_threads", "1"},
        {"minloglevel", "2"},
    };
    std::string proto;
    auto st = sentencepiece::SentencePieceTrainer::Train(args, &it, &proto);
    if (!st.ok()) {
      set_error(err, err_len, st.ToString());
      return 1;
    }
    *model_out = static_cast<char*>(std::malloc(proto.size()));
    std::memcpy(*model_out, proto.data(), proto.size());
    *model_len = proto.size();
    return 0;
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
    return 1;
  }
}

void loong_spm_free_buffer(char* p) { std::free(p); }

void* loong_spm_load(const char* model, size_t len, char* err, size_t err_len) {
  auto* sp = new sentencepiece::SentencePieceProcessor();
  auto st = sp->LoadFromSerializedProto(std::string(model, len));
  if (!st.ok()) {
    set_error(err, err_len, st.ToString());
    delete sp;
    return nullptr;
  }
  return sp;
}

void loong_spm_close(void* handle) { delete static_cast<sentencepiece::SentencePieceProcessor*>(handle); }

int loong_spm_vocab_size(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->GetPieceSize();
}

long loong_spm_encode(void* handle, const char* text, int* ids, long capacity, char* err, size_t err_len) {
  std::vector<int> out;
  auto st = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(text, &out);
  if (!st.ok()) {
    set_error(err, err_len, st.ToString());
    return -1;
  }
  for (long i = 0; i < capacity && i < static_cast<long>(out.size()); ++i) ids[i] = out[i];
  return static_cast<long>(out.size());
}

long loong_spm_decode(void* handle, const int* ids, long count, char* text, long capacity, char* err,
                      size_t err_len) {
  std::string out;
  auto st = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Decode(std::vector<int>(ids, ids + count),
                                                                               &out);
  if (!st.ok()) {
    set_error(err, err_len, st.ToString());
    return -1;
  }
  if (capacity > 0) {
    const long n = std::min<long>(capacity - 1, static_cast<long>(out.size()));
    std::memcpy(text, out.data(), n);
    text[n] = '\0';
  }
  return static_cast<long>(out.size());
}

}  // extern "C"
