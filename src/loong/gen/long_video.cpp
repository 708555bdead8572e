#include "loong/gen/long_video.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/causal_frames.h"
#include "loong/core/clock.h"
#include "loong/core/error.h"
#include "loong/core/runtime.h"
#include "loong/core/torch_compat.h"
#include "loong/text/text_tokenizer.h"
#include "loong/tokenizer/pixels.h"
#include "loong/tokenizer/tokens.h"

namespace loong::gen {

namespace {

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\r") - a + 1);
}

}  // namespace

void validate(const LongVideoOptions& o, int f) {
  if (!std::isfinite(o.seconds) || o.seconds <= 0) fail("--seconds", "must be > 0, got " + std::to_string(o.seconds));
  if (o.seconds > 24 * 3600) fail("--seconds", "at most a day (86400), got " + std::to_string(o.seconds));
  if (!(o.fps > 0)) fail("fps", "must be > 0");
  if (!(std::isfinite(o.first_clip_cfg) && o.first_clip_cfg >= 0))
    fail("--first-clip-cfg", "guidance scale must be a finite number >= 0, got " + std::to_string(o.first_clip_cfg));
  if (!is_causal_length(o.clip_frames, f))
    fail("clip frames", "must be 1 + " + std::to_string(f) + "k, got " + std::to_string(o.clip_frames));
  if (!is_causal_length(o.overlap, f))
    fail("--overlap-frames", "must be 1 + " + std::to_string(f) + "k (1, " + std::to_string(1 + f) + ", " +
                                 std::to_string(1 + 2 * f) + ", ...) so it encodes to whole latent frames, got " +
                                 std::to_string(o.overlap));
  if (o.speculative < 0 || o.speculative > 64)
    fail("--speculative", "codes per model call must be in [0, 64] (0 or 1: off), got " + std::to_string(o.speculative));
  if (o.overlap >= o.clip_frames)
    fail("--overlap-frames", "must be smaller than a clip (" + std::to_string(o.clip_frames) + " frames), got " +
                                 std::to_string(o.overlap));
  if (!std::isfinite(o.first_clip_cfg) || o.first_clip_cfg < 0)
    fail("--first-clip-cfg", "must be >= 0 (0: the same as --cfg), got " + std::to_string(o.first_clip_cfg));
}

std::vector<ClipPlan> plan_clips(int64_t total, int64_t clip_frames, int64_t overlap, int f, bool first_prefix) {
  if (total < 1) fail("plan", "a video needs at least one frame");
  if (!is_causal_length(clip_frames, f) || !is_causal_length(overlap, f) || overlap >= clip_frames)
    fail("plan", "clip frames " + std::to_string(clip_frames) + " and overlap " + std::to_string(overlap) +
                     " must both be 1 + " + std::to_string(f) + "k with the overlap smaller");
  std::vector<ClipPlan> plans;
  int64_t produced = 0;
  while (produced < total) {
    ClipPlan p;
    const bool prefixed = !plans.empty() || first_prefix;
    p.prefix_frames = prefixed ? overlap : 0;
    p.prefix_latents = prefixed ? latent_frames_of(overlap, f) : 0;
    p.emit = std::min(total - produced, clip_frames - p.prefix_frames);
    p.frames = round_up_causal_length(p.prefix_frames + p.emit, f);
    p.latents = latent_frames_of(p.frames, f);
    p.start = produced;
    produced += p.emit;
    plans.push_back(p);
  }
  return plans;
}

PromptSchedule PromptSchedule::single(const std::string& text) {
  PromptSchedule s;
  s.entries.push_back({-1, text});
  return s;
}

namespace {

// Reports and the text tokenizer need UTF-8; nlohmann's serializer checks it.
bool is_utf8(const std::string& text) {
  try {
    (void)nlohmann::json(text).dump();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

}  // namespace

PromptSchedule PromptSchedule::parse(const std::string& content, const std::string& where) {
  PromptSchedule s;
  std::istringstream in(content);
  std::string line;
  int lineno = 0, timed = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    const std::string at = where + ":" + std::to_string(lineno);
    Entry e;
    e.text = t;
    // "SECONDS: prompt" when the line starts with a number followed by ':'.
    const auto colon = t.find(':');
    if (colon != std::string::npos && colon > 0 && t.find_first_not_of("0123456789.", 0) == colon) {
      try {
        size_t used = 0;
        e.start = std::stod(t.substr(0, colon), &used);
        if (used != colon) throw std::invalid_argument("");
      } catch (const std::exception&) {
        fail(at, "expected 'SECONDS: prompt', got " + squote(t.substr(0, colon)) + " as the time");
      }
      e.text = trim(t.substr(colon + 1));
      ++timed;
      if (!s.entries.empty() && e.start <= s.entries.back().start)
        fail(at, "times must increase (" + std::to_string(e.start) + " after " + std::to_string(s.entries.back().start) +
                     ")");
      if (s.entries.empty() && e.start != 0) fail(at, "the first timed prompt must start at 0, got " + std::to_string(e.start));
    }
    if (e.text.empty()) fail(at, "empty prompt");
    if (!is_utf8(e.text)) fail(at, "is not UTF-8 text");
    s.entries.push_back(e);
    if (timed != 0 && timed != static_cast<int>(s.entries.size()))
      fail(at, "mix of timed ('SECONDS: prompt') and untimed lines; use one form for the whole file");
  }
  if (s.entries.empty()) fail(where, "no prompts (one per line; '#' starts a comment)");
  return s;
}

PromptSchedule PromptSchedule::load(const std::string& path) { return parse(read_file(path), path); }

size_t PromptSchedule::index(int64_t clip, double seconds) const {
  if (entries.empty()) fail("prompts", "no prompts");
  if (entries[0].start < 0) return static_cast<size_t>(std::min<int64_t>(clip, static_cast<int64_t>(entries.size()) - 1));
  size_t k = 0;
  for (size_t i = 0; i < entries.size(); ++i)
    if (entries[i].start <= seconds + 1e-9) k = i;
  return k;
}

LongVideoOptions bundle_video_options(const BundleInfo& info) {
  LongVideoOptions o;
  o.fps = info.fps;
  o.clip_frames = info.clip_frames;
  o.overlap = info.overlap;
  return o;
}

namespace {
// On CUDA the language model generates in bfloat16 (weights and KV cache):
// decoding reads every weight once per step, so half the bytes is about half
// the time (docs/method.md §7). On the CPU it keeps its type.
lm::Llama for_inference(lm::Llama model) {
  if (model->output->weight.device().is_cuda()) model->to(torch::kBFloat16);
  return model;
}
}  // namespace

LongVideoGenerator::LongVideoGenerator(tokenizer::VideoTokenizer tokenizer, lm::Llama model, lm::Vocab vocab,
                                       SamplingOptions sampling, TextEncoder text)
    : tokenizer_(std::move(tokenizer)),
      sampler_(for_inference(std::move(model)), vocab, sampling),
      text_(std::move(text)) {
  if (!text_) fail("generation", "no text encoder");
  if (tokenizer_->config.codebook_size != vocab.video_size())
    fail("video tokenizer", "its codebook has " + std::to_string(tokenizer_->config.codebook_size) +
                                " codes but the language model's vocabulary has " + std::to_string(vocab.video_size()));
  tokenizer_->eval();
}

LongVideoGenerator LongVideoGenerator::from_bundle(const Bundle& bundle, SamplingOptions sampling) {
  auto text = std::make_shared<text::TextTokenizer>(text::TextTokenizer::load(bundle.text_dir));
  LongVideoGenerator g(bundle.tokenizer, bundle.lm, bundle.vocab(), sampling,
                       [text](const std::string& prompt) { return text->encode(prompt); });
  g.unseen_ = [text](const std::string& prompt) { return text->unseen_words(prompt); };
  return g;
}

std::vector<std::string> LongVideoGenerator::unseen_words(const std::vector<PromptSchedule>& schedules) const {
  std::vector<std::string> out;
  if (!unseen_) return out;
  std::set<std::string> seen;
  for (const auto& s : schedules)
    for (const auto& e : s.entries)
      for (auto& w : unseen_(e.text))
        if (seen.insert(w).second) out.push_back(std::move(w));
  return out;
}

void PromptSchedule::validate(const std::string& option) const {
  if (entries.empty()) fail(option, "required: what the video shows (or --prompts FILE)");
  for (const auto& e : entries) {
    if (e.text.find_first_not_of(" \t\r\n") == std::string::npos) fail(option, "is empty");
    if (!is_utf8(e.text))
      fail(option, "is not UTF-8 text: " + nlohmann::json(e.text).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace));
  }
}

void LongVideoGenerator::check_prompts(const std::vector<PromptSchedule>& schedules, const std::string& option) {
  for (const auto& s : schedules) {
    s.validate(option);
    for (const auto& e : s.entries) {
      if (ids_.count(e.text)) continue;
      auto v = text_(e.text);
      if (v.empty()) fail(option, "gives no text pieces: " + squote(e.text));
      ids_.emplace(e.text, std::move(v));
    }
  }
}

GenerationTimings LongVideoGenerator::run(const LongVideoOptions& o, const std::vector<PromptSchedule>& schedules,
                                          const LongVideoCallbacks& cb) {
  const auto& tc = tokenizer_->config;
  const int f = tc.temporal_factor(), sf = tc.spatial_factor();
  validate(o, f);
  const int64_t B = static_cast<int64_t>(schedules.size());
  if (B < 1) fail("generation", "no prompts");
  check_prompts(schedules);  // every prompt's ids, once, before any work
  const auto device = tokenizer_->quantizer->embedding->weight.device();
  const int64_t S = tc.image_size, h = S / sf;
  const int64_t total = std::max<int64_t>(1, std::llround(o.seconds * o.fps));
  const bool init = o.init_frames.defined();
  if (init) {
    const auto& v = o.init_frames;
    if (v.dim() != 4 || v.size(1) != S || v.size(2) != S || v.size(3) != 3 || v.scalar_type() != torch::kUInt8)
      fail_input("--init-video", "expected uint8 frames [T, " + std::to_string(S) + ", " + std::to_string(S) +
                               ", 3] (the model's frame size), got " + c10::str(v.sizes()));
    if (v.size(0) < o.overlap)
      fail_input("--init-video", "has " + std::to_string(v.size(0)) + " frames; at least " + std::to_string(o.overlap) +
                               " (--overlap-frames) are needed");
  }
  const auto plans = plan_clips(total, o.clip_frames, o.overlap, f, init);
  int64_t codes_total = 0;
  for (const auto& p : plans) codes_total += (p.latents - p.prefix_latents) * h * h;

  GenerationTimings t;
  const auto run_start = Clock::now();
  const auto before = sampler_.timings();
  sampler_.set_speculation({o.speculative, h * h});
  // The sampler's scale, for every clip but a first one made from the text
  // alone when first_clip_cfg is set; put back however the run ends.
  const double cfg = sampler_.options().cfg_scale;
  struct RestoreCfg {
    CodeSampler& s;
    double cfg;
    ~RestoreCfg() { s.set_cfg_scale(cfg); }
  } restore{sampler_, cfg};
  c10::InferenceMode guard;
  // The last `overlap` frames of the output so far ([B, n, S, S, 3]) and the
  // previous clip's codes ([B, L, h, h]).
  at::Tensor tail, prev_codes;
  if (init) tail = o.init_frames.narrow(0, o.init_frames.size(0) - o.overlap, o.overlap).unsqueeze(0).expand({B, -1, -1, -1, -1});
  int64_t done = 0;
  for (size_t c = 0; c < plans.size(); ++c) {
    const auto& p = plans[c];
    ClipEvent ev;
    ev.clip = static_cast<int64_t>(c);
    ev.clips = static_cast<int64_t>(plans.size());
    ev.plan = &p;
    at::Tensor prefix = torch::empty({B, 0, h, h}, torch::kLong);
    if (p.prefix_latents > 0) {
      if (o.reencode || !prev_codes.defined()) {
        auto t0 = Clock::now();
        ev.condition_frames = tail.narrow(1, tail.size(1) - p.prefix_frames, p.prefix_frames).contiguous();
        // The tokenizer runs in bfloat16 on CUDA (unless asked for float32).
        Bf16Autocast bf16(device.type(), device.is_cuda() && o.tokenizer_bf16);
        adapt_threads();  // each phase takes the cores other processes leave (core/runtime.h)
        prefix = tokenizer_->encode(tokenizer::frames_to_video(ev.condition_frames, device)).to(torch::kCPU, torch::kLong);
        t.encode_s += seconds_since(t0);
      } else {
        prefix = prev_codes.narrow(1, prev_codes.size(1) - p.prefix_latents, p.prefix_latents).contiguous();
      }
    }
    ev.prefix = prefix;
    if (cb.clip_started) cb.clip_started(ev);

    std::vector<ClipPrompt> prompts(static_cast<size_t>(B));
    const double clip_time = static_cast<double>(p.start) / o.fps;
    auto flat = prefix.reshape({B, -1}).to(torch::kInt);
    for (int64_t b = 0; b < B; ++b) {
      const auto& schedule = schedules[static_cast<size_t>(b)];
      const auto& now = schedule.at(ev.clip, clip_time);
      prompts[static_cast<size_t>(b)].text = ids_.at(now);
      if (o.guide_against_previous && c > 0) {
        const auto& previous = schedule.at(ev.clip - 1, static_cast<double>(plans[c - 1].start) / o.fps);
        if (previous != now) prompts[static_cast<size_t>(b)].guide_text = ids_.at(previous);
      }
      auto row = flat[b].contiguous();
      prompts[static_cast<size_t>(b)].prefix.assign(row.data_ptr<int32_t>(), row.data_ptr<int32_t>() + row.numel());
    }
    const int64_t n = (p.latents - p.prefix_latents) * h * h;
    sampler_.set_cfg_scale(p.prefix_latents == 0 && o.first_clip_cfg > 0 ? o.first_clip_cfg : cfg);
    adapt_threads();
    auto codes = sampler_.generate(prompts, n, [&](int64_t i) {
      // Looked at again while the clip is sampled (at most every 0.2 s; a
      // clock read otherwise): the decode step's threads meet at barriers
      // many times a code, and a process that starts mid-clip on one of their
      // cores would hold them all back (docs/benchmarks.md, "Speed under load").
      adapt_threads();
      if (cb.progress) cb.progress(done + i + 1, codes_total);
    });
    done += n;

    auto all = torch::cat({prefix.reshape({B, -1}), codes}, 1).view({B, p.latents, h, h});
    if (cb.clip_codes) cb.clip_codes(all, p, ev.clip);
    auto t0 = Clock::now();
    // [B, emit, S, S, 3]; in bfloat16 where the device has it (CUDA, as the
    // encode above; CPUs with AMX or AVX-512 BF16), unless asked otherwise.
    adapt_threads();
    auto fresh = tokenizer::decode_clip(tokenizer_, all, p.prefix_frames, p.emit, o.tokenizer_bf16);
    t.pixels_s += seconds_since(t0);
    t0 = Clock::now();
    if (cb.frames) cb.frames(fresh, ev.clip);
    t.output_s += seconds_since(t0);
    tail = tail.defined() ? torch::cat({tail, fresh}, 1) : fresh;
    if (tail.size(1) > o.overlap) tail = tail.narrow(1, tail.size(1) - o.overlap, o.overlap).contiguous();
    prev_codes = all;
  }
  const auto& after = sampler_.timings();
  t.prefill_s = after.prefill_s - before.prefill_s;
  t.decode_s = after.decode_s - before.decode_s;
  t.decode_calls = after.decode_calls - before.decode_calls;
  t.drafted = after.drafted - before.drafted;
  t.accepted = after.accepted - before.accepted;
  t.codes = codes_total;
  t.total_s = seconds_since(run_start);
  return t;
}

}  // namespace loong::gen
