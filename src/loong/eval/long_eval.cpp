#include "loong/eval/long_eval.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/core/runtime.h"
#include "loong/data/manifest.h"
#include "loong/eval/caption.h"
#include "loong/eval/metrics.h"
#include "loong/eval/probe.h"
#include "loong/eval/probe_score.h"
#include "loong/eval/report.h"
#include "loong/gen/long_video.h"
#include "loong/io/image.h"
#include "loong/io/plot.h"
#include "loong/io/video.h"
#include "loong/tokenizer/tokens.h"

namespace loong::eval {

json run_long_eval(const LongEvalOptions& opt, const std::function<void(const std::string&)>& log) {
  auto sampling = opt.sampling;
  double first_clip_cfg = opt.first_clip_cfg;
  gen::validate(sampling);
  const auto device = parse_device(opt.device);
  if (opt.prompts.empty() == opt.real.empty()) fail("eval long", "give --prompts or --real");
  std::vector<std::string> prompts;
  std::vector<CaptionFacts> facts;
  std::vector<data::Entry> real;
  if (!opt.real.empty()) {
    for (const auto& e : data::load_manifest(opt.real).entries)
      if (e.kind == data::MediaKind::Video) real.push_back(e);
    if (real.empty()) fail(opt.real, "holds no videos");
    for (const auto& e : real) {
      prompts.push_back(e.caption);
      facts.push_back(parse_caption(e.caption));
    }
  } else {
    for (const auto& e : gen::PromptSchedule::load(opt.prompts).entries) {  // one video per line
      prompts.push_back(e.text);
      facts.push_back(parse_caption(e.text));
    }
  }
  const std::string model = gen::model_or_default(opt.model);
  auto bundle = gen::load_bundle(model, device);
  gen::resolve_sampling(bundle.info, opt.given, sampling, first_clip_cfg);
  auto net = load_probe(opt.probe, device);
  if (net->config.image_size != bundle.tokenizer->config.image_size)
    fail_input("--probe", "reads " + std::to_string(net->config.image_size) + "-pixel frames but the model makes " +
                        std::to_string(bundle.tokenizer->config.image_size));
  // The text tokenizer and every prompt's ids before any work (a caption that
  // gives no text pieces fails here, naming where the prompts came from).
  auto generator = gen::LongVideoGenerator::from_bundle(bundle, sampling);
  generator.set_decode_weights(opt.decode_weights);  // checks the name and the device
  std::vector<gen::PromptSchedule> all_prompts;
  for (const auto& p : prompts) all_prompts.push_back(gen::PromptSchedule::single(p));
  generator.check_prompts(all_prompts, opt.real.empty() ? opt.prompts : opt.real);
  gen::LongVideoOptions o = gen::bundle_video_options(bundle.info);
  o.seconds = opt.seconds;
  o.reencode = opt.reencode;
  o.tokenizer_bf16 = !opt.tokenizer_f32;
  o.first_clip_cfg = first_clip_cfg;
  // Clip boundaries of a T-frame video (the same frame indices for a real one).
  auto pixels = [&](const torch::Tensor& frames) -> std::map<std::string, double> {
    std::vector<int64_t> starts;
    const auto plans =
        gen::plan_clips(frames.size(0), o.clip_frames, o.overlap, bundle.tokenizer->config.temporal_factor());
    for (size_t k = 1; k < plans.size(); ++k) starts.push_back(plans[k].start);
    return {{"boundary_jump", boundary_jump(frames, starts)}, {"frame_change", mean_frame_change(frames)}};
  };
  // The real videos first (their first --seconds): a broken one fails before any generation.
  ScoreReport real_report;
  SegmentFeatures real_features(opt.segment), fake_features(opt.segment);
  for (size_t i = 0; i < real.size(); ++i) {
    const auto& e = real[i];
    video::ReadOptions ro;
    ro.size = net->config.image_size;
    ro.start = e.start;
    ro.end = e.end < 0 ? e.start + opt.seconds : std::min(e.end, e.start + opt.seconds);
    const auto v = video::read(e.path, ro);
    torch::Tensor f;
    real_report.add({{"video", e.path}, {"caption", e.caption}},
                    score_video(net, v.frames, v.fps, facts[i], opt.segment, 64, &f), pixels(v.frames));
    real_features.add(f, v.fps);
  }
  make_dirs(opt.out + "/videos");
  ScoreReport report;
  for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(opt.batch)) {
    const size_t n = std::min(prompts.size() - first, static_cast<size_t>(opt.batch));
    std::vector<std::vector<at::Tensor>> frames(n);
    std::vector<std::unique_ptr<video::VideoWriter>> writers;
    video::WriteOptions w;
    w.fps = o.fps;
    w.streaming = true;
    const int S = bundle.tokenizer->config.image_size;
    auto name = [&](size_t i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%06zu.mp4", first + i);
      return opt.out + "/videos/" + buf;
    };
    for (size_t i = 0; i < n; ++i) {
      // OUT/videos is this command's own folder: what a killed run left
      // there is its own, and a rerun replaces it.
      std::error_code ec;
      std::filesystem::remove(video::streaming_path(name(i)), ec);
      writers.push_back(std::make_unique<video::VideoWriter>(name(i), S, S, w));
    }
    const std::vector<gen::PromptSchedule> schedules(all_prompts.begin() + static_cast<std::ptrdiff_t>(first),
                                                     all_prompts.begin() + static_cast<std::ptrdiff_t>(first + n));
    gen::LongVideoCallbacks cb;
    cb.frames = [&](const at::Tensor& f, int64_t) {
      for (size_t i = 0; i < n; ++i) {
        frames[i].push_back(f[static_cast<int64_t>(i)]);
        writers[i]->write(f[static_cast<int64_t>(i)]);
        writers[i]->flush();
      }
    };
    generator.run(o, schedules, cb);
    for (size_t i = 0; i < n; ++i) {
      writers[i]->close();
      torch::Tensor f;
      const auto all = torch::cat(frames[i]);
      const auto sc = score_video(net, all, o.fps, facts[first + i], opt.segment, 64, &f);
      fake_features.add(f, o.fps);
      report.add({{"video", name(i)}, {"prompt", prompts[first + i]}}, sc, pixels(all));
      if (log) {
        char scores[160];
        std::snprintf(scores, sizeof scores, ": text match %.3f, identity %.3f, motion %.3f, items seen %.3f",
                      sc.overall.text_match, sc.overall.identity, sc.overall.motion, sc.overall.items_seen);
        log(name(i) + scores);
      }
    }
  }
  report.write_plots(opt.out, real.empty() ? nullptr : &real_report);
  json out = {{"model", model},
              {"probe", opt.probe},
              {"seconds", opt.seconds},
              {"segment_seconds", opt.segment},
              {"reencode", o.reencode},
              {"seed", sampling.seed},
              {"cfg", sampling.cfg_scale},
              {"first_clip_cfg", first_clip_cfg},
              {"top_k", sampling.top_k},
              {"top_p", sampling.top_p},
              {"temperature", sampling.temperature},
              {"decode_weights", generator.decode_weights()},
              {"tokenizer_precision", tokenizer::decodes_in_bf16(o.tokenizer_bf16, device) ? "bf16" : "f32"}};
  report.write_to(out);
  if (!real.empty()) {
    json r = {{"manifest", opt.real}};
    real_report.write_to(r);
    out["real"] = r;
    // Probe-feature Fréchet distance, generated against real, per segment.
    const auto d = segment_frechet(fake_features, real_features);
    auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
    out["frechet"] = num(d.overall);
    plot::Series line{"generated vs real", {40, 110, 220}, {}, {}};
    for (size_t k = 0; k < d.segments.size(); ++k) {
      out["segments"][k]["frechet"] = num(d.segments[k]);
      line.x.push_back(report.segment_middles()[k]);
      line.y.push_back(d.segments[k]);
    }
    image::write_png(opt.out + "/frechet.png", plot::line_plot({line}, "seconds", "probe frechet distance"));
  }
  write_json_file(opt.out + "/report.json", out);
  return out;
}

}  // namespace loong::eval
