// A probe for the moving-fashion world (issue 6): a small CNN that reads a
// frame's ground truth back from pixels, so generated videos can be scored
// against their prompts.
//
// It works in two stages. The first is a small dense detector in the manner
// of CenterNet (Zhou et al. 2019, "Objects as Points"): on a grid of cells
// (one per 8x8 pixels) it predicts how likely an item's centre lies in the
// cell, the item's class (10) and colour (8), and the centre's offset within
// the cell; from the whole frame, the background (6 colours). The second
// crops a window around each detected centre (the strongest peaks of the
// centre map) and names the item in it again with a classifier of its own:
// a cell sees the item through a trunk shared with every other output, a crop
// sees the whole item centred, which names classes far better. For scoring,
// the peaks are read out as 80 item slots (class * 8 + colour): a slot's
// score is the best over the peaks of P(centre) * P(class) * P(colour),
// each peak naming only its most likely item.
//
// It trains on frames rendered on the fly by the moving-fashion generator (a
// pure function of the seed and index, with exact ground truth), optionally
// passed through a video tokenizer first so that it sees the blur generated
// frames have. The crop classifier trains on windows around the true centres,
// jittered by about the detector's position error.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>
#include <torch/nn.h>

#include "loong/eval/caption.h"
#include "loong/eval/fvd.h"

namespace loong::eval {

constexpr int kProbeClasses = 10, kProbeColours = 8, kProbeBackgrounds = 6;
constexpr int kProbeItems = kProbeClasses * kProbeColours;  // item slot = class * 8 + colour

struct ProbeConfig {
  int image_size = 64;
  int channels = 32;  // width of the first layer (then x2, x4, x4, x4, x4); the crop classifier's too
  int features = 256;
  // The crop classifier's window: a square of crop_fraction * image_size
  // around a centre (items are 0.3125 of the frame), resampled to crop_pixels.
  double crop_fraction = 0.375;
  int crop_pixels = 24;
  // The crop classifier's own width (its first layer; then x2, x2, x4, x4).
  // 0: `channels`, as in probes saved before it was a key of its own.
  int crop_channels = 0;
  int crop_width() const { return crop_channels > 0 ? crop_channels : channels; }

  nlohmann::json to_json() const;
  static ProbeConfig from_json(const nlohmann::json& j, const std::string& where);
  void validate(const std::string& where) const;
};

struct ProbeOutput {
  torch::Tensor features;    // [N, F] (for Fréchet distances)
  torch::Tensor background;  // [N, 6] logits
  // The cell maps, G = S / 8 cells a side.
  torch::Tensor centre;      // [N, G, G] logits: an item's centre is in the cell
  torch::Tensor item_class;  // [N, 10, G, G] logits
  torch::Tensor colour;      // [N, 8, G, G] logits
  torch::Tensor offset;      // [N, 2, G, G] centre - cell centre (x, y), in cells
  // The strongest peaks of the centre map and what is named there.
  torch::Tensor peak_score;     // [N, M] P(centre) at the peak (0 where fewer peaks)
  torch::Tensor peak_position;  // [N, M, 2] centre (x, y) as fractions of the frame
  torch::Tensor peak_class;     // [N, M, 10] probabilities
  torch::Tensor peak_colour;    // [N, M, 8] probabilities
  // Read out as item slots (see above).
  torch::Tensor presence;    // [N, 80] logits of the slot's score
  torch::Tensor position;    // [N, 80, 2] centre (x, y) as fractions of the frame
};

constexpr int kProbePeaks = 6;  // peaks read per frame (a frame has at most 3 items)

struct ProbeNetImpl : torch::nn::Module {
  explicit ProbeNetImpl(ProbeConfig c);
  // Both stages: float [N, 3, S, S] in [0, 1].
  ProbeOutput forward(const torch::Tensor& x);
  // The first stage only: features, background and the cell maps.
  ProbeOutput maps(const torch::Tensor& x);
  // The crop classifier at given centres: x [N, 3, S, S], centres [N, M, 2]
  // (x, y as fractions of the frame) -> class logits [N, M, 10] and colour
  // logits [N, M, 8].
  std::pair<torch::Tensor, torch::Tensor> classify_crops(const torch::Tensor& x, const torch::Tensor& centres);
  int64_t grid() const { return config.image_size / 8; }
  ProbeConfig config;
  torch::nn::Sequential trunk{nullptr};
  torch::nn::Conv2d cells{nullptr};  // 1 + 10 + 8 + 2 outputs per cell
  torch::nn::Linear embed{nullptr}, background{nullptr};
  torch::nn::Sequential crop_trunk{nullptr};
  torch::nn::Linear crop_head{nullptr};  // 10 + 8
};
TORCH_MODULE(ProbeNet);

// A probe of `config` holding `from`'s weights wherever a parameter has the
// same name and shape; the rest (the crop classifier's layers when its width
// or resampled window changes) starts fresh. For `--from P` with another crop
// classifier.
ProbeNet reshaped_probe(const ProbeNet& from, const ProbeConfig& config);

// Square windows of `fraction` of the frame around centres [N, M, 2] (x, y
// as fractions), resampled bilinearly to pixels x pixels: x [N, C, S, S] ->
// [N * M, C, pixels, pixels] (frame n's windows together).
torch::Tensor crop_windows(const torch::Tensor& x, const torch::Tensor& centres, double fraction, int64_t pixels);

// Finds the kProbePeaks strongest local maxima of the centre map and fills
// o.peak_score and o.peak_position, with class and colour read from the cell
// maps at those cells.
void find_peaks(ProbeOutput& o);
// Fills o.presence and o.position from the peaks (see above).
void read_slots(ProbeOutput& o);

// Per-frame targets from moving-fashion ground truth (the "truth" JSON of a
// video or still): background [T] int64, presence [T, 80] float, position
// [T, 80, 2] float (0 where absent).
struct ProbeTargets {
  torch::Tensor background, presence, position;
};
ProbeTargets probe_targets(const nlohmann::json& truth, int64_t frames);

// Cell-map targets for G x G cells. An item's centre cell and its neighbours
// get a Gaussian of the distance to the true centre (sigma 0.6 cells; the
// centre cell is exactly 1) in the centre map, and carry the item's class,
// colour and offset weighted by it, the nearest item winning where two
// overlap.
struct CellTargets {
  torch::Tensor centre;              // [N, G, G]
  torch::Tensor weight;              // [N, G, G] (0: no item near)
  torch::Tensor item_class, colour;  // [N, G, G] int64
  torch::Tensor offset;              // [N, 2, G, G]

  CellTargets to(c10::Device device) const;
};
CellTargets cell_targets(const ProbeTargets& t, int64_t G);

struct ProbeTrainOptions {
  int steps = 1500;
  int batch = 32;           // frames per step (8 videos x 4 frames)
  double lr = 2e-3;
  uint64_t seed = 0;
  int heldout_videos = 48;  // t10k split (unseen items), scored at the end
  // A second phase that trains the crop classifier alone, on the items of
  // `crop_batch` fresh stills a step. The first phase reads few items a step
  // (its trunk runs on whole frames); the crop classifier is cheap, and with
  // about 8 passes' worth of Fashion-MNIST items (the default) it names far
  // more classes.
  int crop_steps = 1500;
  int crop_batch = 256;
  double crop_lr = 1e-3;
  // Frames pass through these before the probe sees them (e.g. a tokenizer
  // round trip): uint8 [T, S, S, 3] -> the same shape. Optional.
  // `degrade` takes a whole video (the held-out score at the end passes whole
  // videos, as generated ones are decoded); `degrade_each` takes each frame
  // as a clip of its own (in training half the frames go through it).
  std::function<torch::Tensor(const torch::Tensor&)> degrade, degrade_each;
  std::function<void(int step, double loss)> on_step;  // steps of both phases, counted on
};

struct ProbeScores {
  double background_accuracy = 0;  // share of frames with the right background
  double items_exact = 0;          // share of frames whose k most likely items are the k visible ones
  double position_error = 0;       // mean |error| of the centre, fraction of the frame, over visible items
  double class_accuracy = 0;       // of visible items, by the crop classifier at their true centre
  double colour_accuracy = 0;      // the same for their colour
  double cell_class_accuracy = 0;  // of visible items, read from the cell map at their true centre
  // class_accuracy per true class (recall; NaN for a class no item had), and
  // the items of each class: which classes the probe confuses.
  std::vector<double> class_recall;
  std::vector<int64_t> class_items;
  int64_t frames = 0;
};

// Trains on rendered train-split videos and stills (`o.steps` of the whole
// probe, then `o.crop_steps` of the crop classifier); returns held-out
// scores. A trained probe may be trained on.
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

void save_probe(const std::string& dir, const ProbeNet& net, const nlohmann::json& provenance = {});
ProbeNet load_probe(const std::string& dir, c10::Device device = c10::Device("cpu"));

}  // namespace loong::eval
