// Decoding manifest entries: the `data check` pass and the training-time clip
// loader, which skips and counts bad samples and stops once too many fail.
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "loong/data/manifest.h"
#include "loong/io/video.h"

namespace loong::data {

struct ClipOptions {
  video::ReadOptions read;       // fps, size, limits; start/end come from each entry
  int64_t frames = 0;            // exact frames per clip (from the entry's start); 0 = all
  int64_t max_frames = 0;        // when frames == 0: keep at most this many (0 = all)
  double max_bad_fraction = 0.05;  // stop once more than this share of samples failed...
  int64_t min_samples = 20;        // ...after at least this many were tried
};

struct Clip {
  at::Tensor frames;  // uint8 [T, H, W, 3]; T = 1 for images
  std::string caption;
  size_t index = 0;   // into the manifest
};

// Decodes one entry exactly as training does; throws loong::Error on failure.
Clip load_clip(const Manifest& m, size_t index, const ClipOptions& opts);

struct BadEntry {
  size_t index;
  std::string path;
  std::string reason;
};

// Decodes every entry; returns the ones that fail. progress(i, n) is optional.
std::vector<BadEntry> check_manifest(const Manifest& m, const ClipOptions& opts,
                                     const std::function<void(size_t, size_t)>& progress = {});

// `loong data check`: parses the manifest (malformed lines are listed, not
// fatal) and decodes every entry. JSON: manifest, entries, malformed_lines,
// bad (line, path, reason), ok.
nlohmann::json check_report(const std::string& manifest, const ClipOptions& opts);

class ClipDataset {
 public:
  ClipDataset(Manifest manifest, ClipOptions opts);
  size_t size() const { return manifest_.entries.size(); }
  const Manifest& manifest() const { return manifest_; }

  // nullopt for a bad sample (counted); throws loong::Error once the share of
  // bad samples exceeds max_bad_fraction.
  std::optional<Clip> get(size_t index);

  int64_t tried() const { return tried_; }
  int64_t bad() const { return bad_; }
  const std::vector<BadEntry>& bad_entries() const { return bad_entries_; }

 private:
  Manifest manifest_;
  ClipOptions opts_;
  int64_t tried_ = 0, bad_ = 0;
  std::vector<BadEntry> bad_entries_;  // the first 100
};

}  // namespace loong::data
