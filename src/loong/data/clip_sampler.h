// Random training clips from a manifest: decodes each entry once (at the
// configured fps and size), keeps decoded entries in memory up to a budget, and
// cuts random windows of the requested length from them. Entries too short for
// a window are skipped; bad entries are counted by ClipDataset's rules.
#pragma once
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "loong/data/dataset.h"

namespace loong::data {

struct SamplerOptions {
  ClipOptions clip;            // read.fps, read.size; clip.max_frames bounds what is kept per entry
  int64_t cache_mb = 4096;     // decoded entries kept in memory
};

class ClipSampler {
 public:
  ClipSampler(Manifest manifest, SamplerOptions opts);

  // uint8 [batch, frames, size, size, 3]: random windows of `frames`
  // consecutive frames (frames == 1: any frame of any entry, images included).
  // Throws loong::Error when no entry is long enough.
  at::Tensor sample(int frames, int batch, std::mt19937_64& rng);

  // The clip of entry i (decoded or cached); nullopt when it is bad.
  std::optional<at::Tensor> entry(size_t i);

  size_t size() const { return data_.size(); }
  const ClipDataset& dataset() const { return data_; }
  int64_t cached_bytes() const { return cached_bytes_; }

 private:
  ClipDataset data_;
  SamplerOptions opts_;
  std::vector<at::Tensor> cache_;
  std::vector<int64_t> length_;   // frames per entry: -1 unknown, 0 bad
  int64_t cached_bytes_ = 0;
};

}  // namespace loong::data
