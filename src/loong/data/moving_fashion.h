// moving-fashion: a real text-video world built from Fashion-MNIST items.
//
// Each video has one or two items (10 classes), each tinted one of 8 named
// colours, moving in one of 8 directions at a named speed and bouncing off the
// walls, on a named background colour. Long videos may have scene changes (the
// background changes colour; an item leaves and a new one enters) that the
// caption narrates with "then ...". Every frame's ground truth (class, colour,
// position, visibility, background) is recorded for evaluation. Everything is
// a pure function of (options, index): deterministic for a seed.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "loong/data/fashion_mnist.h"

namespace loong::data {

struct NamedColour {
  const char* name;
  uint8_t r, g, b;
};
extern const std::array<NamedColour, 8> kItemColours;
extern const std::array<NamedColour, 6> kBackgrounds;
extern const std::array<const char*, 8> kDirections;  // "left", "up and to the right", ...

struct MovingFashionOptions {
  int videos = 16;
  double seconds = 10;       // per video
  int size = 128;            // frames are size x size
  double fps = 6.5;
  uint64_t seed = 0;
  std::string split = "train";  // Fashion-MNIST split: "train" or "t10k" (held-out items)
  int images = 0;            // captioned stills for stage-1 training
  double two_items = 0.35;   // probability that a clip or image has two items
  double scene_changes = 0;  // probability of a scene change in each 10 s after the first
  // The world's look (docs/data.md, "Worlds"): the items' width as a fraction
  // of the frame (0.3125: 20 pixels at 64; 0.4375: Fashion-MNIST's own 28),
  // the classes items are drawn from (empty: all 10), and whether items bounce
  // off each other as off the walls (so two items never hide each other).
  double item_size = 0.3125;
  std::vector<int> classes;
  bool items_bounce = false;
  std::string mnist_dir;     // "" = default_fashion_mnist_dir()
};

// Throws loong::Error naming the option when a value is out of range.
void validate(const MovingFashionOptions& o);

// The keys that describe the world's look rather than one dataset:
// {"item_size", "classes", "two_items", "items_bounce"} (dataset.json's
// "world"; a probe records it to render the world it scores).
nlohmann::json world_json(const MovingFashionOptions& o);
// Sets those keys of `o` from `world` (absent keys keep their values); throws
// loong::Error naming `where` and the key for a wrong type or value.
void set_world(MovingFashionOptions& o, const nlohmann::json& world, const std::string& where);
// "0,1,3" or "t-shirt,dress" (class indices or names, see kFashionClassNames)
// -> sorted distinct indices; throws naming `where` for an unknown class.
std::vector<int> parse_classes(const std::string& text, const std::string& where);

struct Sample {
  at::Tensor frames;     // uint8 [T, size, size, 3] (T = 1 for images)
  std::string caption;
  nlohmann::json truth;  // see docs/data.md
};

int64_t frame_count(const MovingFashionOptions& o);  // round(seconds * fps), at least 1

// Renders video `index` (0-based) of the dataset described by `o`.
Sample make_video(const FashionMnist& items, const MovingFashionOptions& o, int64_t index);

// Renders still image `index` (a separate random stream from the videos).
Sample make_image(const FashionMnist& items, const MovingFashionOptions& o, int64_t index);

// Writes the dataset to `out_dir` (needs FFmpeg for MP4s, libpng for stills):
//   videos/NNNNNN.mp4 + videos/NNNNNN.json (ground truth), images/NNNNNN.png,
//   manifest.jsonl (videos), images.jsonl (stills), dataset.json, sheet.png.
// Returns dataset.json's content.
// Refuses a non-empty out_dir unless overwrite is set, so nothing is lost.
//
// Part `part` of `parts` (many processes or machines, one dataset): writes
// only samples part, part + parts, ... (each a pure function of the options
// and its index, so the parts' files never collide and equal those of one
// process), and its entries as parts/part-PPPPP-of-NNNNN.json. The part that
// finds every part's entries present (with the same options) writes
// manifest.jsonl and images.jsonl, byte for byte those of one process; on
// machines without a shared folder, copy the folders together and run any
// part again: a part whose entries are already there with the same options is
// not rendered again, only merged (so a restarted job redoes only the parts
// that had not finished). Part 0 writes sheet.png from its samples. With
// parts > 1 the folder is shared: a finished dataset (manifest.jsonl) or this
// part's entries written with other options are refused unless overwrite.
struct PartResult {
  nlohmann::json info;    // dataset.json
  bool merged = false;    // this call wrote the manifests
  int parts_present = 1;  // parts whose entries were found
};
PartResult write_moving_fashion_part(const MovingFashionOptions& o, const std::string& out_dir, int part, int parts,
                                     bool verbose = false, bool overwrite = false);
nlohmann::json write_moving_fashion(const MovingFashionOptions& o, const std::string& out_dir,
                                    bool verbose = false, bool overwrite = false);

}  // namespace loong::data
