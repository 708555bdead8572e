#include "loong/data/clip_sampler.h"

#include <torch/torch.h>

#include "loong/core/error.h"

namespace loong::data {

ClipSampler::ClipSampler(Manifest manifest, SamplerOptions opts)
    : data_(std::move(manifest), opts.clip), opts_(std::move(opts)) {
  cache_.resize(data_.size());
  length_.assign(data_.size(), -1);
  for (size_t i = 0; i < data_.size(); ++i)
    if (data_.manifest().entries[i].kind == MediaKind::Image) length_[i] = 1;
}

std::optional<at::Tensor> ClipSampler::entry(size_t i) {
  if (cache_[i].defined()) return cache_[i];
  if (length_[i] == 0) return std::nullopt;
  auto clip = data_.get(i);
  if (!clip) {
    length_[i] = 0;
    return std::nullopt;
  }
  length_[i] = clip->frames.size(0);
  const int64_t bytes = clip->frames.numel();
  if (cached_bytes_ + bytes <= opts_.cache_mb * (1LL << 20)) {
    cache_[i] = clip->frames;
    cached_bytes_ += bytes;
  }
  return clip->frames;
}

at::Tensor ClipSampler::sample(int frames, int batch, std::mt19937_64& rng) {
  const int size = opts_.clip.read.size;
  std::vector<at::Tensor> items;
  const size_t n = data_.size();
  int64_t misses = 0, longest = 0;
  while (static_cast<int>(items.size()) < batch) {
    const size_t i = std::uniform_int_distribution<size_t>(0, n - 1)(rng);
    if (length_[i] == 0 || (length_[i] > 0 && length_[i] < frames)) {
      // Known bad or too short. Give up once no entry can ever serve.
      if (++misses > static_cast<int64_t>(20 * n + 100)) {
        bool any = false;
        for (size_t k = 0; k < n; ++k) {
          any = any || length_[k] < 0 || length_[k] >= frames;
          longest = std::max(longest, length_[k]);
        }
        if (!any)
          fail(data_.manifest().path, "no entry has " + std::to_string(frames) + " frames at " +
                                          std::to_string(opts_.clip.read.fps) + " fps (longest: " +
                                          std::to_string(longest) + "); use longer videos or a shorter stage");
        misses = 0;
      }
      continue;
    }
    auto clip = entry(i);
    if (!clip || clip->size(0) < frames) continue;
    if (clip->size(1) != size || clip->size(2) != size)
      fail(data_.manifest().entries[i].path, "decoded to " + std::to_string(clip->size(2)) + "x" +
                                                 std::to_string(clip->size(1)) + ", expected " +
                                                 std::to_string(size) + "x" + std::to_string(size));
    const int64_t start = std::uniform_int_distribution<int64_t>(0, clip->size(0) - frames)(rng);
    items.push_back(clip->narrow(0, start, frames));
  }
  return torch::stack(items);
}

}  // namespace loong::data
