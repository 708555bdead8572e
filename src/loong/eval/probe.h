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
  // The moving-fashion world the probe trains on and scores (a dataset.json's
  // "world": item size, classes, two items, bouncing; data::set_world). Empty:
  // the generator's default world, as in probes saved before it was a key.
  nlohmann::json world = nlohmann::json::object();

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

// uint8 frames [T, S, S, 3] -> the probe's input, float [T, 3, S, S] in [0, 1].
torch::Tensor probe_input(const torch::Tensor& frames);

void save_probe(const std::string& dir, const ProbeNet& net, const nlohmann::json& provenance = {});
ProbeNet load_probe(const std::string& dir, c10::Device device = c10::Device("cpu"));

}  // namespace loong::eval
