// A probe for the moving-fashion world (issue 6): a small CNN that reads a
// frame's ground truth back from pixels, so generated videos can be scored
// against their prompts.
//
// Per frame it predicts the background (6 colours), which (class, colour)
// items are visible (80 independent yes/no outputs, so two bags of different
// colours are two items) and the centre of each visible one. It trains on
// frames rendered on the fly by the moving-fashion generator (a pure function
// of the seed and index, with exact ground truth), optionally passed through a
// video tokenizer first so that it sees the blur generated frames have.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>
#include <torch/nn.h>

#include "loong/eval/caption.h"

namespace loong::eval {

constexpr int kProbeClasses = 10, kProbeColours = 8, kProbeBackgrounds = 6;
constexpr int kProbeItems = kProbeClasses * kProbeColours;  // item slot = class * 8 + colour

struct ProbeConfig {
  int image_size = 64;
  int channels = 32;  // width of the first layer (then x2, x4, x4)
  int features = 256;

  nlohmann::json to_json() const;
  static ProbeConfig from_json(const nlohmann::json& j, const std::string& where);
};

struct ProbeOutput {
  torch::Tensor features;    // [N, F] (for Fréchet distances)
  torch::Tensor background;  // [N, 6] logits
  torch::Tensor presence;    // [N, 80] logits
  torch::Tensor position;    // [N, 80, 2] centre (x, y) as fractions of the frame
};

struct ProbeNetImpl : torch::nn::Module {
  explicit ProbeNetImpl(ProbeConfig c);
  ProbeOutput forward(const torch::Tensor& x);  // float [N, 3, S, S] in [0, 1]
  ProbeConfig config;
  torch::nn::Sequential trunk{nullptr};
  torch::nn::Linear embed{nullptr}, background{nullptr}, presence{nullptr}, position{nullptr};
};
TORCH_MODULE(ProbeNet);

// Per-frame targets from moving-fashion ground truth (the "truth" JSON of a
// video or still): background [T] int64, presence [T, 80] float, position
// [T, 80, 2] float (0 where absent).
struct ProbeTargets {
  torch::Tensor background, presence, position;
};
ProbeTargets probe_targets(const nlohmann::json& truth, int64_t frames);

struct ProbeTrainOptions {
  int steps = 1500;
  int batch = 32;           // frames per step (8 videos x 4 frames)
  double lr = 2e-3;
  uint64_t seed = 0;
  int heldout_videos = 48;  // t10k split (unseen items), scored at the end
  // Frames pass through this before the probe sees them (e.g. a tokenizer
  // round trip): uint8 [T, S, S, 3] -> the same shape. Optional.
  std::function<torch::Tensor(const torch::Tensor&)> degrade;
  std::function<void(int step, double loss)> on_step;
};

struct ProbeScores {
  double background_accuracy = 0;  // share of frames with the right background
  double items_exact = 0;          // share of frames whose k most likely items are the k visible ones
  double position_error = 0;       // mean |error| of the centre, fraction of the frame, over visible items
  int64_t frames = 0;
};

// Trains on rendered train-split videos and stills; returns held-out scores.
ProbeScores train_probe(ProbeNet& net, const ProbeTrainOptions& o);
// Scores on rendered videos of a split (t10k = items the probe never saw).
ProbeScores score_probe(ProbeNet& net, const std::string& split, int videos, uint64_t seed,
                        const std::function<torch::Tensor(const torch::Tensor&)>& degrade = {});

// Scores of a video (or one segment of it) against its prompt.
struct SegmentScore {
  double start = 0, end = 0;  // seconds
  int64_t frames = 0;
  double text_match = 0;  // share of frames showing a scene the prompt describes (background and items)
  double identity = 0;    // share of frames showing the video's most common item set
  double motion = 0;      // mean speed of the items seen in consecutive frames, frame widths per second
};

struct VideoScore {
  std::vector<SegmentScore> segments;  // of `segment_seconds` each (the last may be shorter)
  SegmentScore overall;
};

// From per-frame probe outputs: background logits [T, 6], presence logits
// [T, 80], positions [T, 80, 2]. A frame matches the prompt when its
// predicted background is the prompt's (when it names one) and its k most
// likely items are the prompt's k items, for any scene of the prompt (the
// first or one after a narrated change).
VideoScore score_predictions(const torch::Tensor& background, const torch::Tensor& presence,
                             const torch::Tensor& position, double fps, const CaptionFacts& facts,
                             double segment_seconds);
// Runs the probe over uint8 frames [T, S, S, 3] (S = its image size) and scores them.
VideoScore score_video(ProbeNet& net, const torch::Tensor& frames, double fps, const CaptionFacts& facts,
                       double segment_seconds, int batch = 64);

void save_probe(const std::string& dir, const ProbeNet& net, const nlohmann::json& provenance = {});
ProbeNet load_probe(const std::string& dir, c10::Device device = c10::Device("cpu"));

}  // namespace loong::eval
