// The small models the tests build: a language model and a video tokenizer
// small enough to run many forwards in a test, and a text encoder for models
// that have no SentencePiece tokenizer.
#pragma once
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "loong/gen/long_video.h"
#include "loong/lm/config.h"
#include "loong/tokenizer/config.h"

namespace loong::test {

// A 2-layer LLaMA of width 32 with grouped-query attention (2 key/value
// heads for 4 query heads), 20 text ids and `video_vocab` codes.
inline lm::LmConfig micro_lm(int video_vocab = 64) {
  lm::LmConfig c;
  c.name = "micro";
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;  // grouped-query attention, so the cache path covers it
  c.ffn_dim = 64;
  c.max_seq_len = 160;
  c.text_vocab = 20;
  c.video_vocab = video_vocab;
  return c;
}

// micro_lm(30) with full attention heads and 64 positions (test_lm.cpp's and
// test_decode_step.cpp's model).
inline lm::LmConfig micro_lm_full_heads() {
  auto c = micro_lm(30);
  c.n_kv_heads = 4;
  c.max_seq_len = 64;
  return c;
}

// A tokenizer on 16 x 16 frames (2 x 2 codes per latent frame), 64 codes.
inline tokenizer::TokenizerConfig micro_tokenizer() {
  tokenizer::TokenizerConfig c;
  c.name = "micro";
  c.image_size = 16;
  c.base_channels = 8;
  c.channel_mult = {1, 1, 2, 2};
  c.codebook_size = 64;
  c.codebook_dim = 8;
  return c;
}

// Prompts written as their ids: "1 2" -> {1, 2}.
// Minute-level generation at the micro sizes: clips of 17 frames at 6.5 fps,
// 5 frames re-encoded between them.
inline gen::LongVideoOptions micro_options(double seconds) {
  gen::LongVideoOptions o;
  o.seconds = seconds;
  o.fps = 6.5;
  o.clip_frames = 17;
  o.overlap = 5;
  return o;
}

inline gen::TextEncoder id_encoder() {
  return [](const std::string& prompt) {
    std::istringstream in(prompt);
    std::vector<int32_t> ids;
    for (int32_t id; in >> id;) ids.push_back(id);
    return ids;
  };
}

// One untimed prompt per video.
inline std::vector<gen::PromptSchedule> prompts(const std::vector<std::string>& texts) {
  std::vector<gen::PromptSchedule> out;
  for (const auto& t : texts) out.push_back(gen::PromptSchedule::single(t));
  return out;
}

}  // namespace loong::test
