// Training and checking the moving-fashion probe (eval/probe.h) on frames
// rendered on the fly, with exact ground truth.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "loong/eval/probe.h"
#include "loong/tokenizer/model.h"

namespace loong::eval {

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

// The scores as the probe's report JSON (recall and items per class named).
nlohmann::json to_json(const ProbeScores& s);

// Sets o.degrade and o.degrade_each so that training and held-out frames pass
// through `tokenizer` first (they then look like generated ones). Throws
// loong::Error naming --tokenizer when its frame size is not the probe's.
void degrade_through(ProbeTrainOptions& o, const tokenizer::VideoTokenizer& tokenizer, int probe_size,
                     const std::string& size_source);

}  // namespace loong::eval
