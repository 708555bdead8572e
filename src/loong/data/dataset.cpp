#include "loong/data/dataset.h"

#include <torch/torch.h>

#include "loong/core/error.h"

namespace loong::data {

Clip load_clip(const Manifest& m, size_t index, const ClipOptions& opts) {
  const Entry& e = m.entries.at(index);
  Clip c;
  c.index = index;
  c.caption = e.caption;
  if (e.kind == MediaKind::Image) {
    c.frames = video::read_image(e.path, opts.read.size, opts.read).unsqueeze(0);
    return c;
  }
  video::ReadOptions r = opts.read;
  r.start = e.start;
  r.end = e.end;
  std::vector<at::Tensor> frames;
  video::read_frames(e.path, r, [&](const at::Tensor& f, double) {
    frames.push_back(f);
    const int64_t n = static_cast<int64_t>(frames.size());
    if (opts.frames > 0) return n < opts.frames;
    return opts.max_frames <= 0 || n < opts.max_frames;
  });
  if (frames.empty()) fail(e.path, "no frames in the requested range");
  if (opts.frames > 0 && static_cast<int64_t>(frames.size()) < opts.frames)
    fail(e.path, "too short: " + std::to_string(frames.size()) + " frames at " +
                     std::to_string(r.fps) + " fps, need " + std::to_string(opts.frames));
  c.frames = torch::stack(frames);
  return c;
}

std::vector<BadEntry> check_manifest(const Manifest& m, const ClipOptions& opts,
                                     const std::function<void(size_t, size_t)>& progress) {
  std::vector<BadEntry> bad;
  video::require_video_support();
  for (size_t i = 0; i < m.entries.size(); ++i) {
    if (progress) progress(i, m.entries.size());
    try {
      load_clip(m, i, opts);
    } catch (const std::exception& ex) {
      bad.push_back({i, m.entries[i].path, ex.what()});
    }
  }
  return bad;
}

nlohmann::json check_report(const std::string& path, const ClipOptions& opts) {
  const Manifest m = parse_manifest(path);
  if (m.entries.empty() && m.errors.empty()) fail(path, "has no entries (expected a video or an image per line)");
  nlohmann::json report = {{"manifest", path}, {"entries", m.entries.size()},
                           {"malformed_lines", m.errors}, {"bad", nlohmann::json::array()}};
  for (const auto& b : check_manifest(m, opts))
    report["bad"].push_back({{"line", m.entries[b.index].line}, {"path", b.path}, {"reason", b.reason}});
  report["ok"] = m.entries.size() - report["bad"].size();
  return report;
}

ClipDataset::ClipDataset(Manifest manifest, ClipOptions opts)
    : manifest_(std::move(manifest)), opts_(std::move(opts)) {
  video::require_video_support();  // else every entry would be skipped as unreadable
  if (!(opts_.max_bad_fraction >= 0 && opts_.max_bad_fraction <= 1))
    fail("max_bad_fraction", "expected a share in [0, 1]");
}

std::optional<Clip> ClipDataset::get(size_t index) {
  ++tried_;
  try {
    return load_clip(manifest_, index, opts_);
  } catch (const Error& ex) {
    ++bad_;
    if (bad_entries_.size() < 100) bad_entries_.push_back({index, manifest_.entries[index].path, ex.what()});
    if (tried_ >= opts_.min_samples &&
        static_cast<double>(bad_) > opts_.max_bad_fraction * static_cast<double>(tried_))
      throw Error(manifest_.path + ": too many bad samples: " + std::to_string(bad_) + " of " +
                  std::to_string(tried_) + " failed (limit " +
                  std::to_string(static_cast<int>(opts_.max_bad_fraction * 100)) + "%); last: " +
                  ex.what() + ". Run `loong data check` on the manifest.");
    return std::nullopt;
  }
}

}  // namespace loong::data
