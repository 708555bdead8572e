// Text to a video file, the whole pipeline behind `loong generate` (and any
// other front end: a server, a script): check the request, load the bundle,
// resolve its sampling defaults, generate clip by clip, upscale, stream the
// frames to the output, and write the contact sheet and the report.
//
// Everything the user typed is checked before the model is loaded; errors
// name the option (--prompt, --seconds, ...) as the CLI spells it.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "loong/core/error.h"
#include "loong/gen/bundle.h"
#include "loong/gen/long_video.h"

namespace loong::gen {


struct GenerateRequest {
  std::string model;          // bundle folder; "" = default_model_dir()
  PromptSchedule prompts;     // one prompt, or a story over time
  double seconds = 10;
  SamplingOptions sampling;
  SamplingGiven given;        // which of the sampling values were given (else the bundle's)
  double first_clip_cfg = 0;  // when given.first_clip_cfg
  int64_t overlap = 0;        // frames re-encoded between clips; 0 = the bundle's
  bool reencode = true;
  bool guide_against_previous = false;  // LongVideoOptions::guide_against_previous
  // Speculative decoding: codes scored per model call (code_sampler.h); 0 or
  // 1 = one per call; -1 = default_speculation() for the model and device.
  int64_t speculative = -1;
  // The weights the CPU's decode step reads: f32, bf16 or int8
  // (CodeSampler::set_decode_weights).
  std::string decode_weights = "f32";
  // Clips decode to frames in float32 even where bfloat16 is native
  // (LongVideoOptions::tokenizer_bf16 false).
  bool tokenizer_f32 = false;
  std::string init_video;     // continue this video ("" = none)
  int upscale = 1;
  bool upscale_given = false;  // --upscale was given (it must then match --sr-model's factor)
  std::string upscale_method = "bicubic";
  std::string sr_model;        // a learned upscaler ("" = resampling)
  std::string out;             // .mp4, .mkv, .mov or .gif
  std::string sheet;           // contact sheet PNG ("" = none)
  std::string report;          // report JSON ("" = none)
  // The sampled codes and the clip plan (a token file, tokenizer/tokens.h;
  // `loong tokenizer decode` makes the same video of it); "" = none.
  std::string save_codes;
  c10::Device device = c10::Device("cpu");
  // Already loaded (a server keeps its model): used instead of loading
  // `model`, on its own device. Not owned; one generation at a time.
  const Bundle* bundle = nullptr;
};

// Thrown by generate_video when GenerateEvents::cancelled says so; the
// partial output is removed first.
class Cancelled : public Error {
 public:
  Cancelled() : Error("cancelled") {}
};

// Before any generation: where the video goes and how long it is.
struct GenerateStart {
  std::string model;      // the bundle used
  std::string out;        // the final path
  std::string writing;    // the path being written while clips finish ("" = written at the end: GIF)
  int64_t frames = 0, clips = 0, size = 0;
  double fps = 0;
};

// After each clip is written.
struct ClipWritten {
  int64_t clip = 0, clips = 0;
  int64_t first = 0, last = 0;  // output frame indices of the clip's new frames
  int64_t total = 0;            // output frames of the whole video
  double fps = 0;
  at::Tensor frames;            // uint8 [t, H, W, 3] as written (upscaled)
};

// After each sampled code.
struct GenerateProgress {
  int64_t done = 0, total = 0;  // codes per video
  int64_t clip = 0, clips = 0;
  double elapsed_s = 0, codes_per_s = 0, eta_s = 0;
};

struct GenerateEvents {
  std::function<void(const GenerateStart&)> started;
  std::function<void(const ClipWritten&)> clip_written;
  std::function<void(const GenerateProgress&)> progress;
  // Something the user should know that does not stop the run (words the
  // text tokenizer never saw); without a handler, printed to stderr.
  std::function<void(const std::string&)> warning;
  // Asked after every code and clip: true stops the run (Cancelled).
  std::function<bool()> cancelled;
};

struct GenerateResult {
  nlohmann::json report;  // settings and timings (what --report writes)
  int64_t frames = 0, size = 0;
  double fps = 0;
  GenerationTimings timings;
  double upscale_s = 0, write_s = 0, total_s = 0;
};

// Throws loong::Error for what can be checked without the model: the
// settings (sampling values, the upscaler, seconds), then the prompts.
void validate_settings(const GenerateRequest& r);
void validate(const GenerateRequest& r);

// Runs the whole pipeline. The output is streamed to
// video::streaming_path(out) and renamed when complete (GIFs are written at
// the end); the sheet, codes and report are written after it.
GenerateResult generate_video(const GenerateRequest& r, const GenerateEvents& events = {});

}  // namespace loong::gen
