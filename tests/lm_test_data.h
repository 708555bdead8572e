// Token shards for the language-model tests.
#pragma once
#include <filesystem>
#include <string>

#include "loong/lm/shards.h"

namespace loong::test {

// Shards of `images` images (2x2 tokens) and `videos` clips of 5 latent
// frames (17 video frames): text vocabulary 12, codebook 16. Codes follow the
// caption, so there is something to learn.
inline void write_shards(const std::string& dir, int images, int videos, int text_vocab = 12, int video_vocab = 16) {
  std::filesystem::create_directories(dir);
  lm::ShardWriter w(dir + "/part-00000-of-00001.loongshard", text_vocab, video_vocab);
  for (int i = 0; i < images + videos; ++i) {
    lm::ShardSample s;
    const bool image = i < images;
    s.kind = image ? lm::SampleKind::Image : lm::SampleKind::Video;
    s.frames = image ? 1 : 5;
    s.height = s.width = 2;
    const int topic = i % 3;
    s.text = {topic, 3 + topic, 6 + (i % 2)};
    for (int t = 0; t < s.frames; ++t)
      for (int k = 0; k < 4; ++k) s.video.push_back((topic * 5 + t + k) % video_vocab);
    s.caption = "c" + std::to_string(i);
    w.add(s);
  }
  w.finish();
}

}  // namespace loong::test
