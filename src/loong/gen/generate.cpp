#include "loong/gen/generate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/clock.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/core/runtime.h"
#include "loong/gen/sr.h"
#include "loong/gen/upscale.h"
#include "loong/io/image.h"
#include "loong/io/video.h"
#include "loong/tokenizer/tokens.h"

namespace loong::gen {

void validate_settings(const GenerateRequest& r) {
  validate(r.sampling);
  resampling_upscaler(r.upscale, r.upscale_method);
  if (!std::isfinite(r.seconds) || r.seconds <= 0) fail("--seconds", "must be > 0, got " + std::to_string(r.seconds));
  if (r.given.first_clip_cfg && !(std::isfinite(r.first_clip_cfg) && r.first_clip_cfg >= 0))
    fail("--first-clip-cfg", "guidance scale must be a finite number >= 0, got " + std::to_string(r.first_clip_cfg));
  if (r.overlap < 0)
    fail("--overlap-frames", "must be 1 + 4k frames (0: the model's own), got " + std::to_string(r.overlap));
  if (r.decode_weights != "f32" && r.decode_weights != "bf16" && r.decode_weights != "int8")
    fail("--decode-weights", "expected f32, bf16 or int8, got " + squote(r.decode_weights));
  if (r.decode_weights != "f32" && !r.device.is_cpu())  // before the model loads (CodeSampler checks again)
    fail("--decode-weights", r.decode_weights + " is for the CPU's decode step (CUDA decodes in bfloat16 already)");
  if (r.speculative < -1 || r.speculative > 64)
    fail("--speculative", "codes per model call must be in [0, 64] (0 or 1: off), got " + std::to_string(r.speculative));
}

void validate(const GenerateRequest& r) {
  validate_settings(r);
  r.prompts.validate();
  // Paths, before the model loads: nothing may fail after the whole generation.
  for (const NamedPath& o :
       {NamedPath{"--out", r.out}, {"--sheet", r.sheet}, {"--report", r.report}, {"--save-codes", r.save_codes}})
    require_writable_file(o);
  require_distinct_paths({{"--out", r.out},
                          {"--out's partial file", r.out.empty() ? "" : video::streaming_path(r.out)},
                          {"--sheet", r.sheet},
                          {"--report", r.report},
                          {"--save-codes", r.save_codes}},
                         {{"--init-video", r.init_video}, {"--sr-model", r.sr_model}});
  // The file written while clips finish (MP4, MOV, MKV) is ours by its name
  // only; one already there is someone's, or a killed run's, and is kept.
  if (!r.out.empty() && video::can_stream(r.out) && std::filesystem::exists(video::streaming_path(r.out)))
    fail("--out", video::streaming_path(r.out) + " already exists (a killed run leaves one): remove it if it is not "
                  "needed, or write to another file");
}

GenerateResult generate_video(const GenerateRequest& r, const GenerateEvents& events) {
  validate(r);
  SamplingOptions sampling = r.sampling;
  double first_clip_cfg = r.first_clip_cfg;
  int upscale = r.upscale;
  auto upscaler = resampling_upscaler(upscale, r.upscale_method);
  if (!r.sr_model.empty()) {
    int factor = 0;
    upscaler = load_upscaler(r.sr_model, r.device, &factor);
    if (r.upscale_given && upscale != factor)
      fail("--upscale", std::to_string(upscale) + " does not match --sr-model's factor " + std::to_string(factor));
    upscale = factor;
  }

  const std::string model = r.bundle ? r.bundle->dir : model_or_default(r.model);
  const Bundle bundle = r.bundle ? *r.bundle : load_bundle(model, r.device);
  resolve_sampling(bundle.info, r.given, sampling, first_clip_cfg);
  auto generator = LongVideoGenerator::from_bundle(bundle, sampling);
  generator.set_decode_weights(r.decode_weights);
  generator.check_prompts({r.prompts});  // before --init-video is read and the output opened
  std::vector<std::string> unseen = generator.unseen_words({r.prompts});
  if (!unseen.empty()) {
    std::string list;
    for (const auto& w : unseen) list += (list.empty() ? "" : ", ") + squote(w);
    const std::string msg = "the model's text tokenizer never saw " + list +
                            " in training; the video is made, but the model knows nothing about " +
                            (unseen.size() == 1 ? "this word" : "these words");
    if (events.warning) events.warning(msg);
    else std::fprintf(stderr, "warning: %s\n", msg.c_str());
  }
  LongVideoOptions o = bundle_video_options(bundle.info);
  o.seconds = r.seconds;
  if (r.overlap > 0) o.overlap = r.overlap;
  o.reencode = r.reencode;
  o.guide_against_previous = r.guide_against_previous;
  o.tokenizer_bf16 = !r.tokenizer_f32;
  o.first_clip_cfg = first_clip_cfg;
  o.speculative = r.speculative < 0 ? default_speculation(bundle.lm, r.device) : r.speculative;
  if (r.device.is_cuda()) o.speculative = 0;  // the CUDA-graph decode scores one code per call (reported as such)
  const int S = bundle.tokenizer->config.image_size;
  if (!r.init_video.empty()) {
    video::ReadOptions ro;
    ro.fps = o.fps;
    ro.size = S;
    o.init_frames = video::read(r.init_video, ro).frames;
  }
  validate(o, bundle.tokenizer->config.temporal_factor());

  const int64_t total = std::max<int64_t>(1, std::llround(o.seconds * o.fps));
  const int out_size = S * upscale;
  video::WriteOptions w;
  w.fps = o.fps;
  w.streaming = video::can_stream(r.out);  // written while clips finish
  auto writer = std::make_unique<video::VideoWriter>(r.out, out_size, out_size, w);
  const int64_t clips = static_cast<int64_t>(
      plan_clips(total, o.clip_frames, o.overlap, bundle.tokenizer->config.temporal_factor(), o.init_frames.defined())
          .size());
  if (events.started)
    events.started({model, r.out, w.streaming ? video::streaming_path(r.out) : "", total, clips, out_size, o.fps});

  const auto sheet_at = image::spread_indices(total, 8);
  std::set<int64_t> sheet_set(sheet_at.begin(), sheet_at.end());
  std::vector<at::Tensor> sheet_tiles;
  double upscale_s = 0;
  int64_t written = 0, current = 0;

  // --save-codes: each clip's grid and which of its decoded frames the video kept.
  tokenizer::EncodedVideo codes;
  std::vector<at::Tensor> clip_codes;
  json plan = json::array();

  LongVideoCallbacks cb;
  cb.clip_started = [&](const ClipEvent& ev) { current = ev.clip; };
  if (!r.save_codes.empty())
    cb.clip_codes = [&](const at::Tensor& all, const ClipPlan& p, int64_t) {
      clip_codes.push_back(all[0].clone());
      codes.chunks.push_back(p.latents);
      codes.skip.push_back(p.prefix_frames);
      codes.keep.push_back(p.emit);
      plan.push_back({{"frames", p.frames},
                      {"latents", p.latents},
                      {"prefix_frames", p.prefix_frames},
                      {"prefix_latents", p.prefix_latents},
                      {"start", p.start},
                      {"emit", p.emit}});
    };
  cb.frames = [&](const at::Tensor& frames, int64_t clip) {
    auto t0 = Clock::now();
    adapt_threads();  // as each phase of the generator (core/runtime.h)
    auto f = upscaler(frames[0]);
    upscale_s += seconds_since(t0);
    for (int64_t i = 0; i < f.size(0); ++i)
      if (sheet_set.count(written + i)) sheet_tiles.push_back(f[i]);
    writer->write(f);
    writer->flush();
    written += f.size(0);
    if (events.clip_written) events.clip_written({clip, clips, written - f.size(0), written - 1, total, o.fps, f});
    if (events.cancelled && events.cancelled()) throw Cancelled();
  };
  const auto start = Clock::now();
  cb.progress = [&](int64_t done, int64_t all) {
    if (events.cancelled && events.cancelled()) throw Cancelled();
    if (!events.progress) return;
    const double el = seconds_since(start);
    const double rate = done / std::max(el, 1e-9);
    events.progress({done, all, current, clips, el, rate, (all - done) / std::max(rate, 1e-9)});
  };

  GenerationTimings t;
  try {
    t = generator.run(o, {r.prompts}, cb);
  } catch (const Cancelled&) {
    writer.reset();  // closes the file; a GIF's temporary goes with the writer
    std::error_code ec;
    if (w.streaming) std::filesystem::remove(video::streaming_path(r.out), ec);  // kept after a kill, not here
    throw;
  }
  auto t0 = Clock::now();
  writer->close();
  const double close_s = seconds_since(t0);
  if (!r.sheet.empty()) image::write_png(r.sheet, image::grid(sheet_tiles, 4));

  GenerateResult res;
  res.frames = written;
  res.size = out_size;
  res.fps = o.fps;
  res.timings = t;
  res.upscale_s = upscale_s;
  res.write_s = t.output_s - upscale_s + close_s;
  res.total_s = t.total_s + close_s;
  json report = {{"model", model},
                 {"out", r.out},
                 {"prompts", json::array()},
                 {"seconds", r.seconds},
                 {"frames", written},
                 {"fps", o.fps},
                 {"size", out_size},
                 {"seed", sampling.seed},
                 {"cfg", sampling.cfg_scale},
                 {"first_clip_cfg", first_clip_cfg},
                 {"top_k", sampling.top_k},
                 {"top_p", sampling.top_p},
                 {"temperature", sampling.temperature},
                 {"overlap_frames", o.overlap},
                 {"reencode", o.reencode},
                 {"guide_against_previous", o.guide_against_previous && sampling.guided()},  // as applied
                 {"upscale", upscale},
                 {"codes", t.codes},
                 {"speculative", o.speculative},
                 {"decode_weights", r.decode_weights},
                 {"tokenizer_precision", tokenizer::decodes_in_bf16(o.tokenizer_bf16, r.device) ? "bf16" : "f32"},
                 {"decode_calls", t.decode_calls},
                 {"codes_per_call", t.decode_calls > 0 ? double(t.codes - clips) / t.decode_calls : 0.0},
                 {"drafted", t.drafted},
                 {"accepted", t.accepted},
                 {"timings_s",
                  {{"prefill", t.prefill_s},
                   {"decode", t.decode_s},
                   {"tokenizer_encode", t.encode_s},
                   {"tokenizer_decode", t.pixels_s},
                   {"upscale", upscale_s},
                   {"write", res.write_s},
                   {"total", res.total_s}}},
                 {"decode_tokens_per_s", t.codes / std::max(t.prefill_s + t.decode_s, 1e-9)}};
  for (const auto& e : r.prompts.entries)
    report["prompts"].push_back(e.start < 0 ? json(e.text) : json{{"start", e.start}, {"text", e.text}});
  if (!unseen.empty()) report["unseen_words"] = unseen;
  if (!r.save_codes.empty()) {
    codes.tokens = torch::cat(clip_codes);
    codes.frames = written;
    codes.fps = o.fps;
    codes.codebook_size = bundle.tokenizer->config.codebook_size;
    codes.bf16 = tokenizer::decodes_in_bf16(o.tokenizer_bf16, r.device);  // as LongVideoGenerator decoded
    json settings = report;
    for (const char* k : {"out", "size", "upscale", "timings_s", "decode_tokens_per_s"}) settings.erase(k);
    settings["clip_plan"] = plan;
    // How the frames were upscaled when written: the codes hold the frames
    // before it, and `tokenizer decode` names these flags to make the same file.
    settings["written_with"] = {
        {"upscale", upscale},
        {"upscale_method", r.sr_model.empty() ? r.upscale_method : "sr-model"},
        {"sr_model", r.sr_model.empty() ? "" : std::filesystem::absolute(r.sr_model).lexically_normal().string()}};
    // `tokenizer decode` may run from another folder: the bundle's absolute path.
    settings["model"] = std::filesystem::absolute(model).lexically_normal().string();
    settings["device"] = r.device.str();
    codes.generation = settings.dump();
    tokenizer::save_tokens(r.save_codes, codes);
    report["codes_file"] = r.save_codes;
  }
  if (!r.report.empty()) write_json_file(r.report, report);
  res.report = std::move(report);
  return res;
}

}  // namespace loong::gen
