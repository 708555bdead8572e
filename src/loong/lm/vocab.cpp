#include "loong/lm/vocab.h"

#include "loong/core/error.h"

namespace loong::lm {

Vocab::Vocab(int text_vocab, int video_vocab) : text_(text_vocab), video_(video_vocab) {
  if (text_vocab < 1 || video_vocab < 1)
    fail("vocabulary", "text and video sizes must be positive, got " + std::to_string(text_vocab) + " and " +
                           std::to_string(video_vocab));
}

int Vocab::video_id(int64_t code) const {
  if (code < 0 || code >= video_)
    fail("video tokens", "code " + std::to_string(code) + " is outside the codebook [0, " + std::to_string(video_) +
                             ")");
  return static_cast<int>(text_ + code);
}

int Vocab::code_of(int64_t id) const {
  if (!is_video(id)) fail("video tokens", "id " + std::to_string(id) + " (" + describe(id) + ") is not a video code");
  return static_cast<int>(id - text_);
}

std::vector<int32_t> Vocab::sequence(const std::vector<int32_t>& text, const std::vector<int32_t>& codes,
                                     bool close) const {
  std::vector<int32_t> s;
  s.reserve(text.size() + codes.size() + 4);
  s.push_back(sot());
  for (int32_t t : text) {
    if (!is_text(t))
      fail("text tokens", "piece id " + std::to_string(t) + " is outside the text vocabulary [0, " +
                              std::to_string(text_) + ")");
    s.push_back(t);
  }
  s.push_back(eot());
  s.push_back(sov());
  for (int32_t c : codes) s.push_back(video_id(c));
  if (close) s.push_back(eov());
  return s;
}

std::string Vocab::describe(int64_t id) const {
  if (is_text(id)) return "text:" + std::to_string(id);
  if (is_video(id)) return "video:" + std::to_string(id - text_);
  static const char* names[] = {"<pad>", "<sot>", "<eot>", "<sov>", "<eov>"};
  const int64_t s = id - text_ - video_;
  if (s >= 0 && s < 5) return names[s];
  if (s >= 5 && s < kSpecialTokens) return "<reserved" + std::to_string(s - 5) + ">";
  return "<out of range:" + std::to_string(id) + ">";
}

}  // namespace loong::lm
