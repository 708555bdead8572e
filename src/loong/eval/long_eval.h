// `loong eval long`: generate a long video per held-out prompt, score each
// segment with the probe, and plot the scores against time, beside real
// videos of the same prompts when a manifest of them is given (their metrics,
// and a probe-feature Fréchet distance per segment).
//
//   OUT/videos/NNNNNN.mp4   the generated videos
//   OUT/report.json         settings, means, per-segment means, per video
//   OUT/text_match.png, identity.png, motion.png, items_seen.png (+ frechet.png with real videos)
#pragma once
#include <functional>
#include <string>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "loong/gen/bundle.h"
#include "loong/gen/sampling.h"

namespace loong::eval {

struct LongEvalOptions {
  std::string model;    // bundle; "" = the default model
  std::string probe;    // probe folder, at the model's frame size
  std::string prompts;  // one prompt per line, one video each ...
  std::string real;     // ... or a manifest of real videos whose captions are the prompts
  std::string out;
  double seconds = 60, segment = 10;
  int batch = 4;  // videos generated together
  bool reencode = true;
  gen::SamplingOptions sampling;
  gen::SamplingGiven given;
  double first_clip_cfg = 0;
  std::string device = "cpu";  // cpu or cuda[:N]
  std::string decode_weights = "f32";  // the CPU decode step's weights: f32, bf16 or int8 (CodeSampler)
  bool tokenizer_f32 = false;          // clips decode in float32 even where bfloat16 is native (LongVideoOptions)
};

// Runs the evaluation; `log` gets a line per generated video. Returns the
// report (also written to OUT/report.json).
nlohmann::json run_long_eval(const LongEvalOptions& o, const std::function<void(const std::string&)>& log = {});

}  // namespace loong::eval
