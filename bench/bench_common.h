// Small helpers shared by the benchmarks: wall-clock timing and medians.
#pragma once
#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "loong/lm/config.h"
#include "loong/lm/shards.h"

namespace loong::bench {

template <class F>
double time_ms(F&& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

// 64 video samples of random codes in the tiny preset's vocabulary, captions
// of a fixed length (no padding): training-throughput shards.
inline void write_random_shards(const std::string& dir, const lm::LmConfig& mc, int latent, int grid, int text_len) {
  lm::ShardWriter w(dir + "/part-00000-of-00001.loongshard", mc.text_vocab, mc.video_vocab);
  std::mt19937 rng(0);
  for (int i = 0; i < 64; ++i) {
    lm::ShardSample s;
    s.kind = lm::SampleKind::Video;
    s.frames = latent, s.height = s.width = grid;
    for (int t = 0; t < text_len; ++t) s.text.push_back(static_cast<int32_t>(rng() % mc.text_vocab));
    for (int t = 0; t < latent * grid * grid; ++t) s.video.push_back(static_cast<int32_t>(rng() % mc.video_vocab));
    w.add(s);
  }
  w.finish();
}

}  // namespace loong::bench
