// Scoring videos against their prompts with a trained probe (eval/probe.h):
// text match, identity, motion and items seen per segment, and probe-feature
// Fréchet distances between sets of videos, segment by segment.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "loong/eval/caption.h"
#include "loong/eval/fvd.h"
#include "loong/eval/probe.h"

namespace loong::eval {

// Scores of a video (or one segment of it) against its prompt.
struct SegmentScore {
  double start = 0, end = 0;  // seconds
  int64_t frames = 0;
  double text_match = 0;  // share of frames showing a scene the prompt describes (background and items)
  double identity = 0;    // share of frames showing the video's most common item set
  double motion = 0;      // mean speed of the items seen in consecutive frames, frame widths per second
  // Share of frames in which the probe finds as many items as the prompt names
  // (that many peaks with P(centre) >= kItemSeen). Text match and identity
  // read the k most likely items of every frame, even of one showing none: a
  // video whose items fade into the background can keep its identity score.
  double items_seen = 0;
};

constexpr double kItemSeen = 0.5;

struct VideoScore {
  std::vector<SegmentScore> segments;  // of `segment_seconds` each (the last may be shorter)
  SegmentScore overall;
};

// From per-frame probe outputs: background logits [T, 6], presence logits
// [T, 80], positions [T, 80, 2]. A frame matches the prompt when its
// predicted background is the prompt's (when it names one) and its k most
// likely items are the prompt's k items, for any scene of the prompt (the
// first or one after a narrated change).
// `peak_score` [T, M] (P(centre) of each frame's peaks) gives items_seen;
// without it items_seen is NaN.
VideoScore score_predictions(const torch::Tensor& background, const torch::Tensor& presence,
                             const torch::Tensor& position, double fps, const CaptionFacts& facts,
                             double segment_seconds, const torch::Tensor& peak_score = {});
// Runs the probe over uint8 frames [T, S, S, 3] (S = its image size) and
// scores them. With `features`, also returns the probe's features [T, F].
VideoScore score_video(ProbeNet& net, const torch::Tensor& frames, double fps, const CaptionFacts& facts,
                       double segment_seconds, int batch = 64, torch::Tensor* features = nullptr);

// Probe features of many videos gathered per segment (every frame of segment
// k of every video, and all frames), for Fréchet distances between generated
// and real videos of the same prompts, segment by segment.
class SegmentFeatures {
 public:
  explicit SegmentFeatures(double segment_seconds) : segment_(segment_seconds) {}
  void add(const torch::Tensor& features, double fps);  // [T, F] of one video
  size_t segments() const { return per_segment_.size(); }
  const FeatureStats& segment(size_t k) const { return per_segment_.at(k); }
  const FeatureStats& overall() const { return overall_; }

 private:
  double segment_;
  std::vector<FeatureStats> per_segment_;
  FeatureStats overall_;
};

// The Fréchet distance of each segment both sets have (a segment with fewer
// than 2 frames in either gets NaN), then of all frames.
struct SegmentDistances {
  std::vector<double> segments;
  double overall = 0;
};
SegmentDistances segment_frechet(const SegmentFeatures& a, const SegmentFeatures& b);

}  // namespace loong::eval
