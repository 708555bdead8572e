#include "loong/eval/probe_score.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <torch/torch.h>

#include "loong/core/error.h"

namespace loong::eval {

VideoScore score_predictions(const torch::Tensor& background, const torch::Tensor& presence,
                             const torch::Tensor& position, double fps, const CaptionFacts& facts,
                             double segment_seconds, const torch::Tensor& peak_score) {
  if (facts.states.empty()) fail("probe score", "the prompt describes no scene");
  if (!(fps > 0) || !(segment_seconds > 0)) fail("probe score", "fps and segment length must be > 0");
  const int64_t T = background.size(0);
  const int64_t k = static_cast<int64_t>(facts.first().items.size());
  auto bg = background.argmax(-1).cpu();
  auto top = std::get<1>(presence.cpu().topk(k, -1));  // [T, k]
  auto pos = position.cpu().to(torch::kDouble);
  // Per frame: its predicted item set (sorted slots) and background.
  std::vector<std::vector<int>> sets(static_cast<size_t>(T));
  std::map<std::vector<int>, int64_t> counts;
  for (int64_t t = 0; t < T; ++t) {
    auto& set = sets[static_cast<size_t>(t)];
    for (int64_t j = 0; j < k; ++j) set.push_back(static_cast<int>(top[t][j].item<int64_t>()));
    std::sort(set.begin(), set.end());
    ++counts[set];
  }
  // Per frame: whether the probe finds k items (peaks at or above kItemSeen).
  std::vector<char> seen;
  if (peak_score.defined()) {
    if (peak_score.dim() != 2 || peak_score.size(0) != T)
      fail("probe score", "expected peak scores [" + std::to_string(T) + ", M], got " + c10::str(peak_score.sizes()));
    auto found = peak_score.cpu().ge(kItemSeen).sum(1);
    for (int64_t t = 0; t < T; ++t) seen.push_back(found[t].item<int64_t>() >= k ? 1 : 0);
  }
  std::vector<int> mode;
  int64_t best = -1;
  for (const auto& [set, n] : counts)
    if (n > best) best = n, mode = set;

  auto score_range = [&](int64_t a, int64_t b) {
    SegmentScore s;
    s.start = a / fps;
    s.end = b / fps;
    s.frames = b - a;
    double match = 0, same = 0, speed = 0, found = 0;
    int64_t moves = 0;
    for (int64_t t = a; t < b; ++t) {
      const auto& set = sets[static_cast<size_t>(t)];
      if (!seen.empty()) found += seen[static_cast<size_t>(t)];
      const int64_t frame_bg = bg[t].item<int64_t>();
      for (const auto& st : facts.states)
        if (st.items == set && (st.background < 0 || st.background == frame_bg)) {
          match += 1;
          break;
        }
      same += set == mode ? 1 : 0;
      if (t > a) {
        for (int slot : set)
          if (std::binary_search(sets[static_cast<size_t>(t - 1)].begin(), sets[static_cast<size_t>(t - 1)].end(), slot)) {
            speed += (pos[t][slot] - pos[t - 1][slot]).norm().item<double>() * fps;
            ++moves;
          }
      }
    }
    s.text_match = s.frames ? match / static_cast<double>(s.frames) : 0;
    s.identity = s.frames ? same / static_cast<double>(s.frames) : 0;
    s.motion = moves ? speed / static_cast<double>(moves) : 0;
    s.items_seen = seen.empty() ? std::nan("") : s.frames ? found / static_cast<double>(s.frames) : 0;
    return s;
  };
  VideoScore v;
  const int64_t per = std::max<int64_t>(1, std::llround(segment_seconds * fps));
  for (int64_t a = 0; a < T; a += per) v.segments.push_back(score_range(a, std::min(T, a + per)));
  v.overall = score_range(0, T);
  return v;
}

VideoScore score_video(ProbeNet& net, const torch::Tensor& frames, double fps, const CaptionFacts& facts,
                       double segment_seconds, int batch, torch::Tensor* features) {
  const int64_t S = net->config.image_size;
  if (frames.dim() != 4 || frames.size(1) != S || frames.size(2) != S || frames.scalar_type() != torch::kUInt8)
    fail("probe score", "expected uint8 frames [T, " + std::to_string(S) + ", " + std::to_string(S) + ", 3], got " +
                            c10::str(frames.sizes()));
  const auto device = net->parameters()[0].device();
  net->eval();
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> bg, pres, pos, peaks, feat;
  for (int64_t i = 0; i < frames.size(0); i += batch) {
    auto out = net->forward(probe_input(frames.narrow(0, i, std::min<int64_t>(batch, frames.size(0) - i))).to(device));
    bg.push_back(out.background.cpu());
    pres.push_back(out.presence.cpu());
    pos.push_back(out.position.cpu());
    peaks.push_back(out.peak_score.cpu());
    if (features) feat.push_back(out.features.cpu());
  }
  if (features) *features = torch::cat(feat);
  return score_predictions(torch::cat(bg), torch::cat(pres), torch::cat(pos), fps, facts, segment_seconds,
                           torch::cat(peaks));
}

void SegmentFeatures::add(const torch::Tensor& features, double fps) {
  const int64_t T = features.size(0);
  const int64_t per = std::max<int64_t>(1, std::llround(segment_ * fps));  // as score_predictions cuts segments
  for (int64_t a = 0, k = 0; a < T; a += per, ++k) {
    if (per_segment_.size() <= static_cast<size_t>(k)) per_segment_.emplace_back();
    per_segment_[static_cast<size_t>(k)].add(features.narrow(0, a, std::min(per, T - a)));
  }
  overall_.add(features);
}

SegmentDistances segment_frechet(const SegmentFeatures& a, const SegmentFeatures& b) {
  auto fd = [](const FeatureStats& x, const FeatureStats& y) {
    if (x.count() < 2 || y.count() < 2) return std::nan("");
    return frechet_distance(x.mean(), x.covariance(), y.mean(), y.covariance());
  };
  SegmentDistances d;
  for (size_t k = 0; k < std::min(a.segments(), b.segments()); ++k) d.segments.push_back(fd(a.segment(k), b.segment(k)));
  d.overall = fd(a.overall(), b.overall());
  return d;
}

}  // namespace loong::eval
