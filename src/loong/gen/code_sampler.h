// Generating the video tokens of one clip with the language model (docs/method.md §5):
// prefill the prompts, then decode token by token with a preallocated KV
// cache. Prompts of one batch may differ in text length: they are padded on
// the left and the padding is masked, which rotary positions make exact.
// With guidance, the conditional and the guidance prompt of every item (empty
// text, or ClipPrompt::guide_text) run as one batch of 2B.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/core/Generator.h>
#include <c10/core/Device.h>

#include "loong/gen/sampling.h"
#include "loong/lm/model.h"
#include "loong/lm/vocab.h"
#include "loong/ops/device.h"

namespace loong::gen {

struct ClipPrompt {
  std::vector<int32_t> text;    // text piece ids (empty = unconditional)
  std::vector<int32_t> prefix;  // video codes already given, raster order (same count for every item)
  // The text of the guidance branch, with the same prefix: empty = none
  // (classifier-free guidance); a story's previous prompt guides the new one
  // away from it (LongVideoOptions::guide_against_previous).
  std::vector<int32_t> guide_text{};  // (an initializer: {text, prefix} stays a complete ClipPrompt)
};

struct SamplerTimings {
  double prefill_s = 0, decode_s = 0;
  int64_t prefill_tokens = 0, decoded_tokens = 0;  // positions run through the model (all rows)
  int64_t sampled = 0;                             // codes sampled (per item)
  int64_t decode_calls = 0;                        // model calls after the prefill (one per code without speculation)
  int64_t drafted = 0, accepted = 0;               // speculation: codes drafted and accepted (per item)
};

// Speculative decoding (docs/generate.md): each model call scores a draft of
// the next `draft` codes in one pass over the KV cache, keeps the longest
// prefix the exact acceptance rule takes, and rolls the cache back past it.
// A drafted code d is accepted with the probability p(d) the sampler would
// give it (after guidance, temperature, top-k and top-p); on rejection the
// code is drawn from p without d, renormalised. Every code is therefore
// distributed exactly as one-at-a-time sampling draws it, and with top-k 1
// the codes are the same. Drafts need no second model: the code of the same
// cell one latent frame back (`frame_codes` codes per frame; video repeats
// itself), else the previous call's guess for that position (Jacobi), else
// the last code.
// Codes a model call scores when the user does not say (docs/benchmarks.md,
// "Speculative decoding"): 2 on the CPU for models past
// kFusedDecodeMaxParameters, whose calls are bound by reading the weights (a
// 700M call scoring 2 costs 1.28x one scoring 1, scoring 4 1.67x: past two
// positions the arithmetic binds, so 2 loses least when drafts fail); 0 (one
// code a call) for smaller ones, whose calls cost about K times one, and on
// CUDA, whose decode step does not speculate.
int64_t default_speculation(const lm::Llama& model, c10::Device device);

struct SpeculationOptions {
  int64_t draft = 0;        // codes scored per model call; 0 or 1 = one code per call (off)
  int64_t frame_codes = 0;  // codes per latent frame (rows x cols); 0 = no frame-back drafts
  bool enabled() const { return draft > 1; }
};

// A batch of prompts as the model takes it: the conditional rows, then (with
// `guided`) the same prompts without text; left-padded with <pad> to the
// longest. tokens int64 [R, P]; valid bool [R, P + n], false on the padding.
struct PackedPrompts {
  at::Tensor tokens, valid;
  int64_t length = 0;  // P
};
PackedPrompts pack_prompts(const lm::Vocab& vocab, const std::vector<ClipPrompt>& prompts, bool guided, int64_t n);

// The largest language model the sampler decodes with the fused
// lm::DecodeStep, which copies most of the weights once a clip (256 MB at
// this size, in f32); past it a step's products outweigh its small operations,
// and the step reads the model's own weights (share_weights).
constexpr int64_t kFusedDecodeMaxParameters = 64'000'000;

class CodeSampler {
 public:
  // The model is put in eval mode. Sampling options are validated.
  CodeSampler(lm::Llama model, lm::Vocab vocab, SamplingOptions options);

  // Samples `n` codes after each prompt's prefix: int64 [B, n] on the CPU.
  // `on_step(i)` runs after code i (0-based) of every item is sampled.
  at::Tensor generate(const std::vector<ClipPrompt>& prompts, int64_t n,
                      const std::function<void(int64_t)>& on_step = {});

  // Positions a batch needs: the longest padded prompt plus n.
  int64_t positions_needed(const std::vector<ClipPrompt>& prompts, int64_t n) const;

  const SamplerTimings& timings() const { return timings_; }
  const SamplingOptions& options() const { return options_; }
  // Changes the guidance scale for the next generate() calls (validated).
  void set_cfg_scale(double scale);
  // Speculative decoding for the next generate() calls, on the CPU path (the
  // static, CUDA-graph path decodes one code per call). Validated.
  void set_speculation(SpeculationOptions s);
  const SpeculationOptions& speculation() const { return spec_; }
  // The KV cache of the last generate() (for tests); null before the first.
  const lm::KvCache* cache() const { return cache_.get(); }
  const lm::Vocab& vocab() const { return vocab_; }
  // Decodes with the model's general forward pass (hidden()) instead of the
  // decode step (lm::DecodeStep): the same codes, slower. For tests and
  // benchmarks.
  void set_reference_decode(bool on) { reference_decode_ = on; }
  // The decode step on the model's own weights (lm::DecodeStep's
  // share_weights), as models above kFusedDecodeMaxParameters always decode,
  // whatever the model's size: the same codes. For tests and benchmarks.
  void set_share_weights(bool on) { share_weights_ = on; }
  // The layers' weights the CPU decode step reads: "f32" (the model's own),
  // "bf16" or "int8" (copies made once, per-row scales for int8; half or a
  // quarter of the bytes a step reads, codes no longer exactly f32's).
  // Throws loong::Error naming --decode-weights for another name or another
  // device than the CPU. The copy is taken at the first step after it: a
  // model whose weights change in place later (a fine-tune between
  // generations) needs refresh_decode_weights().
  void set_decode_weights(const std::string& type);
  void refresh_decode_weights() { fewer_bytes_step_.reset(); }
  const std::string& decode_weights() const { return decode_weights_; }
  // The fused step with LibTorch's operations instead of the hand-written CPU
  // loops (lm::DecodeStep): the same codes. For benchmarks.
  // The fused step on a team of threads where there are (lm::DecodeStep::
  // set_threaded; default on): the same codes. For benchmarks.
  void set_threaded(bool on) { threaded_ = on; }
  // lm::DecodeStep::set_f16_weights for the fused step and the video head
  // (default on): the same codes. For benchmarks.
  void set_f16_weights(bool on) { f16_weights_ = on; }
  void set_hand_kernels(bool on) {
    if (on != hand_kernels_) fewer_bytes_step_.reset();  // built with the old choice
    hand_kernels_ = on;
  }
  // Decodes as on CUDA, on any device: lm::DecodeStep::at_position with fixed
  // shapes and the position on the device, codes sampled there
  // (sample_codes_on_device), nothing copied to the host until the clip is
  // done. On CUDA this is always the way, each step replayed from a CUDA
  // graph where the build has them. On the CPU it is what the graph holds,
  // run eagerly: for tests. Codes follow the device generator, so a seed
  // gives other codes this way than the CPU's way (greedy gives the same).
  void set_static_decode(bool on) { static_decode_ = on; }
  // CUDA graphs for the static decode (default on where available); off
  // launches the same kernels one by one (benchmarks compare the two).
  void set_cuda_graphs(bool on) { cuda_graphs_ = on; }
  // Static decoding: steps replayed from a graph, and graphs captured.
  int64_t graph_replays() const { return graph_replays_; }
  int64_t graphs_captured() const { return graphs_captured_; }

  // Key positions a static decoding step reads: its position rounded up to a
  // multiple of this (one CUDA graph per multiple), so early steps do not
  // read the whole cache.
  static constexpr int64_t kStaticSpan = 512;

 private:
  struct StaticDecoder;
  // The output head's video rows: only they are computed, every other id
  // being masked anyway.
  at::Tensor video_head() const;
  // The fused lm::DecodeStep where it pays (small models) and is not switched
  // off; else none (the general forward pass).
  std::optional<lm::DecodeStep> fused_step() const;
  // Steps 1..n-1 of generate() on the CPU: the fused step (or the general
  // forward pass), codes drawn on the CPU; `codes` holds code 0.
  void decode_on_cpu(at::Tensor codes, int64_t P, int64_t n, bool guided, at::Tensor& out,
                     const std::function<void(int64_t)>& on_step);
  // Steps 1..n-1 of generate() with speculation (set_speculation), on the
  // fused step over K positions where fused_step() gives one, else the
  // general forward pass; `codes` holds code 0.
  void decode_speculative(at::Tensor codes, const std::vector<ClipPrompt>& prompts, int64_t P, int64_t n, bool guided,
                          at::Tensor& out, const std::function<void(int64_t)>& on_step);
  // Steps 1..n-1 of generate() the static way; `first` holds code 0.
  void decode_static(const at::Tensor& first, int64_t P, int64_t n, int64_t B, bool guided, at::Tensor& out,
                     const std::function<void(int64_t)>& on_step);

  lm::Llama model_;
  lm::Vocab vocab_;
  SamplingOptions options_;
  at::Generator gen_;
  std::unique_ptr<lm::KvCache> cache_;  // reused while the batch fits
  int64_t cache_generation_ = 0;        // counts cache_'s allocations
  SamplerTimings timings_;
  SpeculationOptions spec_;
  bool reference_decode_ = false;
  bool share_weights_ = false;
  std::string decode_weights_ = "f32";
  mutable std::optional<lm::DecodeStep> fewer_bytes_step_;  // built once for bf16/int8 weights
  bool hand_kernels_ = true;
  bool threaded_ = true;
  bool f16_weights_ = true;
  bool static_decode_ = false;
  bool cuda_graphs_ = true;
  int64_t graph_replays_ = 0, graphs_captured_ = 0;
  std::shared_ptr<StaticDecoder> static_;
  std::optional<at::Generator> device_gen_;  // kept across clips while the batch and cache stay
};

}  // namespace loong::gen
