#include "loong/eval/report.h"

#include <cmath>

#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/data/manifest.h"
#include "loong/eval/caption.h"
#include "loong/io/video.h"
#include "loong/io/image.h"

namespace loong::eval {

namespace {
json segment_json(const SegmentScore& s) {
  return {{"start", s.start},           {"end", s.end},           {"frames", s.frames},
          {"text_match", s.text_match}, {"identity", s.identity}, {"motion", s.motion},
          {"items_seen", s.items_seen}};
}
}  // namespace

double ScoreReport::metric(const SegmentScore& s, int m) {
  const double v[kCount] = {s.text_match, s.identity, s.motion, s.items_seen};
  return v[m];
}

void ScoreReport::add(json head, const VideoScore& s, const std::map<std::string, double>& pixels) {
  for (const auto& [key, v] : pixels)
    if (std::isfinite(v)) head[key] = v, pixel_sums_[key].first += v, ++pixel_sums_[key].second;
  json segs = json::array();
  for (size_t k = 0; k < s.segments.size(); ++k) {
    const auto& sg = s.segments[k];
    segs.push_back(segment_json(sg));
    if (sums_.size() <= k) sums_.push_back({}), mid_.push_back((sg.start + sg.end) / 2);
    for (int m = 0; m < kCount; ++m) sums_[k][m] += metric(sg, m);
    sums_[k][kCount] += 1;
  }
  head["overall"] = segment_json(s.overall);
  head["segments"] = segs;
  videos_.push_back(head);
  for (int m = 0; m < kCount; ++m) overall_[m] += metric(s.overall, m);
}

void ScoreReport::write_to(json& out) const {
  const double n = static_cast<double>(videos_.size());
  for (int m = 0; m < kCount; ++m) out[kMetrics[m]] = overall_[m] / n;
  json segments = json::array();
  for (size_t k = 0; k < sums_.size(); ++k) {
    json j = {{"segment", k}, {"middle_s", mid_[k]}, {"videos", sums_[k][kCount]}};
    for (int m = 0; m < kCount; ++m) j[kMetrics[m]] = sums_[k][m] / sums_[k][kCount];
    segments.push_back(j);
  }
  for (const auto& [key, sum] : pixel_sums_) out[key] = sum.first / sum.second;
  out["videos"] = videos_.size();
  out["segments"] = segments;
  out["per_video"] = videos_;
}

void ScoreReport::write_plots(const std::string& dir, const ScoreReport* real) const {
  for (int m = 0; m < kCount; ++m) {
    std::vector<plot::Series> lines{
        series(static_cast<size_t>(m), real ? "generated" : (m == 0 ? "text match" : kMetrics[m]), {40, 110, 220})};
    if (real) lines.push_back(real->series(static_cast<size_t>(m), "real", {220, 80, 40}));
    image::write_png(dir + "/" + kMetrics[m] + ".png",
                     plot::line_plot(lines, "seconds", m == 2 ? "widths per s" : "share of frames"));
  }
}

plot::Series ScoreReport::series(size_t metric, const std::string& label, std::array<uint8_t, 3> colour) const {
  plot::Series line{label, colour, mid_, {}};
  for (const auto& s : sums_) line.y.push_back(s[metric] / s[kCount]);
  return line;
}

json score_manifest(ProbeNet& net, const std::string& manifest, double segment) {
  const auto m = data::load_manifest(manifest);
  ScoreReport report;
  for (const auto& e : m.entries) {
    if (e.kind != data::MediaKind::Video) continue;
    const auto facts = parse_caption(e.caption);
    video::ReadOptions o;
    o.size = net->config.image_size;
    o.start = e.start;
    o.end = e.end;
    const auto v = video::read(e.path, o);
    report.add({{"video", e.path}, {"caption", e.caption}}, score_video(net, v.frames, v.fps, facts, segment));
  }
  if (report.empty()) fail(manifest, "holds no videos");
  json out;
  report.write_to(out);
  return out;
}

}  // namespace loong::eval
