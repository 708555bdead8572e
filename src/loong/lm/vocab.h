// The one vocabulary of the language model and the layout of a sequence
// (docs/method.md §3): ids [0, T) are text pieces, [T, T+V) video codes, then 10
// special tokens. A training sequence is
//   <sot> text… <eot> <sov> video… <eov>
// with video tokens in (t, h, w) raster order. Everything that turns ids
// into meaning goes through this class.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace loong::lm {

constexpr int kSpecialTokens = 10;  // <pad> <sot> <eot> <sov> <eov>, then 5 reserved

class Vocab {
 public:
  Vocab(int text_vocab, int video_vocab);  // throws loong::Error for sizes < 1

  int text_size() const { return text_; }
  int video_size() const { return video_; }
  int size() const { return text_ + video_ + kSpecialTokens; }

  int pad() const { return text_ + video_; }
  int sot() const { return text_ + video_ + 1; }
  int eot() const { return text_ + video_ + 2; }
  int sov() const { return text_ + video_ + 3; }
  int eov() const { return text_ + video_ + 4; }

  bool is_text(int64_t id) const { return id >= 0 && id < text_; }
  bool is_video(int64_t id) const { return id >= text_ && id < text_ + video_; }
  int video_id(int64_t code) const;  // code in [0, V) -> id; throws otherwise
  int code_of(int64_t id) const;     // video id -> code; throws for other ids

  // <sot> text <eot> <sov> codes… [<eov>]. Text ids must be text, codes in
  // [0, V); the error names what was out of range.
  std::vector<int32_t> sequence(const std::vector<int32_t>& text, const std::vector<int32_t>& codes,
                                bool close = true) const;
  // Number of ids before the first video token: text length + 3.
  static int64_t prefix_length(int64_t text_tokens) { return text_tokens + 3; }

  // "<sov>", "text:17", "video:203", for logs and errors.
  std::string describe(int64_t id) const;

 private:
  int text_, video_;
};

}  // namespace loong::lm
