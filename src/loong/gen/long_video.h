// Minute-level videos (docs/method.md §5, paper Fig. 4): generate a first clip, then
// repeatedly decode to pixels, re-encode the last n frames with the tokenizer
// as the start of a fresh clip, condition on text + those tokens, generate the
// rest of the clip, decode, drop the overlap and append.
//
// Only the last n frames and the current clip's tokens are kept: finished
// frames go to a callback (gen/generate.h streams them to disk), so memory
// does not grow with the video's length.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "loong/gen/bundle.h"
#include "loong/gen/code_sampler.h"
#include "loong/tokenizer/model.h"

namespace loong::gen {

// One clip of the plan. Frame counts are 1 + f*k (f = the tokenizer's
// temporal factor) so that they map to whole latent frames.
struct ClipPlan {
  int64_t frames = 0;          // frames the clip decodes to
  int64_t latents = 0;         // its latent frames
  int64_t prefix_frames = 0;   // frames given as the condition (0 for a first clip from text only)
  int64_t prefix_latents = 0;  // their latent frames
  int64_t start = 0;           // index in the output of the clip's first new frame
  int64_t emit = 0;            // new frames appended to the output (a last clip may not use them all)
};

// Splits `total` output frames into clips of at most `clip_frames` frames,
// each after the first conditioned on `overlap` frames (with `first_prefix`
// the first one is too: continuing a given video). Throws loong::Error for
// counts that are not 1 + f*k or an overlap that leaves no room.
std::vector<ClipPlan> plan_clips(int64_t total, int64_t clip_frames, int64_t overlap, int temporal_factor,
                                 bool first_prefix = false);

// Prompts over time: either one per clip in order (the last one repeats), or
// each from a start time (seconds) on.
struct PromptSchedule {
  struct Entry {
    double start = -1;  // < 0: untimed (one per clip)
    std::string text;
  };
  std::vector<Entry> entries;

  static PromptSchedule single(const std::string& text);
  // A text file: one prompt per line, or "SECONDS: prompt" lines (not mixed);
  // blank lines and lines starting with '#' are skipped. Errors name the line.
  static PromptSchedule load(const std::string& path);
  static PromptSchedule parse(const std::string& content, const std::string& where);
  // Throws loong::Error naming `option` when there is no prompt or one is blank.
  void validate(const std::string& option = "--prompt") const;
  // The entry of clip `clip`, whose first new frame is at `seconds`.
  size_t index(int64_t clip, double seconds) const;
  const std::string& at(int64_t clip, double seconds) const { return entries.at(index(clip, seconds)).text; }
};

struct LongVideoOptions {
  double seconds = 10;       // output length; round(seconds * fps) frames (at least 1)
  double fps = 6.5;          // the model's frame rate
  int64_t clip_frames = 65;  // frames per generated clip (the model's training length)
  int64_t overlap = 5;       // frames re-encoded as the next clip's condition
  bool reencode = true;      // false: condition on the previous clip's own tokens (Fig. 6 ablation)
  // Guidance scale of the first clip when it is made from the text alone
  // (0: the sampler's, as for every other clip). Small models want less
  // guidance there than where a clip continues re-encoded frames
  // (docs/results.md, "The default model").
  double first_clip_cfg = 0;
  at::Tensor init_frames;    // optional uint8 [T, H, W, 3]: continue this video
  // Speculative decoding (code_sampler.h): codes scored per model call, the
  // drafts repeating the cell one latent frame back; 0 or 1 = one per call.
  int64_t speculative = 0;
  // A story (prompts that change over time): the first clip after a change is
  // guided against the previous prompt instead of against no text, so that
  // the new prompt's items replace the ones its re-encoded start shows
  // (docs/generate.md, "Stories").
  bool guide_against_previous = false;
  // Clips decode to frames in bfloat16 where the device computes it natively
  // (ops/device.h native_bf16: CUDA, CPUs with AMX or AVX-512 BF16), else in
  // float32; false: the tokenizer in float32 everywhere, its re-encoding on
  // CUDA too (tokenizer::decode_clip).
  bool tokenizer_bf16 = true;
};

struct GenerationTimings {
  double prefill_s = 0, decode_s = 0, encode_s = 0, pixels_s = 0, output_s = 0, total_s = 0;
  int64_t codes = 0;         // codes sampled per video
  int64_t decode_calls = 0;  // model calls after the prefills (codes / calls: codes per call)
  int64_t drafted = 0, accepted = 0;  // speculation: drafted codes and those accepted
};

// What happened at the start of a clip, for progress and tests.
struct ClipEvent {
  int64_t clip = 0, clips = 0;
  const ClipPlan* plan = nullptr;
  at::Tensor condition_frames;  // uint8 [B, n, H, W, 3] re-encoded for this clip (undefined if none)
  at::Tensor prefix;            // int64 [B, prefix_latents, h, w] codes the clip starts from
};

struct LongVideoCallbacks {
  // New frames of every item after each clip: uint8 [B, t, H, W, 3] on the CPU.
  std::function<void(const at::Tensor& frames, int64_t clip)> frames;
  std::function<void(const ClipEvent&)> clip_started;
  // Each clip's whole grid of codes before it is decoded: int64 [B, latents,
  // h, w] on the CPU, the prefix included (tokenizer::decode_clip of it, frames
  // [prefix_frames, prefix_frames + emit), gives the clip's new frames).
  std::function<void(const at::Tensor& codes, const ClipPlan& plan, int64_t clip)> clip_codes;
  // After each sampled code: codes done and to do (per video) over the whole run.
  std::function<void(int64_t done, int64_t total)> progress;
};

// A prompt's text piece ids (a bundle's SentencePiece tokenizer; tests and
// benchmarks with random weights pass their own).
using TextEncoder = std::function<std::vector<int32_t>(const std::string& prompt)>;

// The clip settings a bundle was trained for: its fps, clip length and
// overlap (LongVideoOptions' other fields keep their defaults).
LongVideoOptions bundle_video_options(const BundleInfo& info);

class LongVideoGenerator {
 public:
  LongVideoGenerator(tokenizer::VideoTokenizer tokenizer, lm::Llama model, lm::Vocab vocab, SamplingOptions sampling,
                     TextEncoder text);
  // The generator of a loaded bundle, prompts read by its own text tokenizer.
  // `sampling` as resolve_sampling left it.
  static LongVideoGenerator from_bundle(const Bundle& bundle, SamplingOptions sampling);

  // Encodes every prompt of the schedules (each distinct text once; kept for
  // run()). Throws loong::Error naming `option` for an empty prompt or one
  // that gives no text pieces. run() calls it first; callers that do other
  // work before run() (opening outputs) call it before that work.
  void check_prompts(const std::vector<PromptSchedule>& schedules, const std::string& option = "--prompt");

  // The prompts' words the text tokenizer never saw in training (each once;
  // text::TextTokenizer::unseen_words), for a warning: the video is still
  // made, but the model learned nothing about them. Empty for generators
  // made without a bundle's text tokenizer.
  std::vector<std::string> unseen_words(const std::vector<PromptSchedule>& schedules) const;

  // The weights the CPU decode step reads: CodeSampler::set_decode_weights.
  void set_decode_weights(const std::string& type) { sampler_.set_decode_weights(type); }
  const std::string& decode_weights() const { return sampler_.decode_weights(); }
  // CodeSampler::set_threaded (benchmarks' baseline: off).
  void set_threaded(bool on) { sampler_.set_threaded(on); }
  // CodeSampler::set_f16_weights (benchmarks' baseline: off).
  void set_f16_weights(bool on) { sampler_.set_f16_weights(on); }

  // Generates one video per prompt schedule, in lock step (their prompts may
  // differ). A clip takes the prompt its schedule has at the clip's first new
  // frame. Prompts are checked (check_prompts) before any work.
  GenerationTimings run(const LongVideoOptions& o, const std::vector<PromptSchedule>& prompts,
                        const LongVideoCallbacks& cb);

 private:
  tokenizer::VideoTokenizer tokenizer_;
  CodeSampler sampler_;
  TextEncoder text_;
  std::function<std::vector<std::string>(const std::string&)> unseen_;  // from_bundle's text tokenizer
  std::map<std::string, std::vector<int32_t>> ids_;  // prompt -> its text ids
};

// Throws loong::Error naming the option for bad values (seconds <= 0, an
// overlap that is not 1 + f*k or leaves no new frames, ...).
void validate(const LongVideoOptions& o, int temporal_factor);

}  // namespace loong::gen
