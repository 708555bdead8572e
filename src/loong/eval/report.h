// Probe scores of many videos (`eval probe score`, `eval long`): each video's
// JSON, the means over videos and the mean of each segment index (the
// metrics against time), and their plots.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "loong/eval/probe_score.h"
#include "loong/io/plot.h"

namespace loong::eval {

class ScoreReport {
 public:
  static constexpr int kCount = 4;
  static constexpr const char* kMetrics[kCount] = {"text_match", "identity", "motion", "items_seen"};
  static double metric(const SegmentScore& s, int m);

  // `head`: the video's own keys (path, caption). `pixels`: measures of the
  // video's frames (boundary_jump, frame_change), each averaged over the
  // videos where it is defined.
  void add(nlohmann::json head, const VideoScore& s, const std::map<std::string, double>& pixels = {});

  // Fills `out` with the means, the per-segment means and the videos.
  void write_to(nlohmann::json& out) const;

  // DIR/text_match.png, identity.png, motion.png, items_seen.png: the
  // per-segment means against time, beside those of real videos when given.
  void write_plots(const std::string& dir, const ScoreReport* real = nullptr) const;

  plot::Series series(size_t metric, const std::string& label, std::array<uint8_t, 3> colour) const;
  const std::vector<double>& segment_middles() const { return mid_; }
  bool empty() const { return videos_.empty(); }

 private:
  nlohmann::json videos_ = nlohmann::json::array();
  std::vector<std::array<double, kCount + 1>> sums_;  // per segment: each metric's sum, then the videos
  std::vector<double> mid_;
  double overall_[kCount] = {};
  std::map<std::string, std::pair<double, int>> pixel_sums_;
};

// `loong eval probe score`: scores every video of a manifest against its
// caption, `segment` seconds at a time; the report as ScoreReport::write_to
// fills it. Fails naming the manifest when it holds no videos.
nlohmann::json score_manifest(ProbeNet& net, const std::string& manifest, double segment);

}  // namespace loong::eval
