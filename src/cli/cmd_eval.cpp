// loong eval fvd: Fréchet Video Distance between two sets of videos.
#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>

#include <torch/torch.h>

#include "cli/commands.h"
#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/core/runtime.h"
#include "loong/data/fashion_mnist.h"
#include "loong/data/manifest.h"
#include "loong/eval/clip.h"
#include "loong/eval/fvd.h"
#include "loong/eval/metrics.h"
#include "loong/eval/probe.h"
#include "loong/gen/bundle.h"
#include "loong/gen/long_video.h"
#include "loong/io/image.h"
#include "loong/text/text_tokenizer.h"
#include "loong/train/plot.h"
#include "loong/tokenizer/checkpoint.h"
#include "loong/tokenizer/tokens.h"
#include "loong/io/video.h"

namespace fs = std::filesystem;

namespace loong::cli {

namespace {

struct VideoRef {
  std::string path;
  double start = 0, end = -1;
};

// A folder (every video file in it, sorted) or a manifest (its video entries).
std::vector<VideoRef> list_videos(const std::string& src, const std::string& flag) {
  std::vector<VideoRef> out;
  if (fs::is_directory(src)) {
    for (const auto& e : fs::directory_iterator(src)) {
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      if (e.is_regular_file() && (ext == ".mp4" || ext == ".mkv" || ext == ".mov" || ext == ".webm" ||
                                  ext == ".avi" || ext == ".gif"))
        out.push_back({e.path().string()});
    }
    std::sort(out.begin(), out.end(), [](const VideoRef& a, const VideoRef& b) { return a.path < b.path; });
  } else if (fs::is_regular_file(src)) {
    for (const auto& e : data::load_manifest(src).entries)
      if (e.kind == data::MediaKind::Video) out.push_back({e.path, e.start, e.end});
  } else {
    fail(flag, "no such folder or manifest: " + src);
  }
  if (out.empty()) fail(flag, src + " holds no videos");
  return out;
}

struct SetResult {
  eval::FeatureStats stats;
  int64_t videos = 0, short_videos = 0;
};

SetResult set_features(eval::VideoFeatureNet& net, const std::vector<VideoRef>& videos, int frames, double fps,
                       int64_t max_videos, int batch) {
  SetResult r;
  std::vector<at::Tensor> pending;
  auto flush = [&] {
    if (pending.empty()) return;
    r.stats.add(net.features(torch::stack(pending)));
    pending.clear();
  };
  for (const auto& v : videos) {
    if (max_videos > 0 && r.videos >= max_videos) break;
    video::ReadOptions o;
    o.fps = fps;
    o.start = v.start;
    o.end = v.end;
    std::vector<at::Tensor> clip;
    video::read_frames(v.path, o, [&](const at::Tensor& f, double) {
      clip.push_back(f);
      return static_cast<int>(clip.size()) < frames;
    });
    if (static_cast<int>(clip.size()) < frames) {  // as StyleGAN-V: short videos are left out
      ++r.short_videos;
      continue;
    }
    if (!pending.empty() && clip[0].sizes() != pending[0][0].sizes()) flush();  // sizes may differ between files
    pending.push_back(torch::stack(clip));
    ++r.videos;
    if (static_cast<int>(pending.size()) >= batch) flush();
  }
  flush();
  return r;
}

// Probe scores of many videos: each video's JSON, the means over videos and
// the mean of each segment index (the metrics against time), and plots.
class ScoreReport {
 public:
  static constexpr int kCount = 4;
  static constexpr const char* kMetrics[kCount] = {"text_match", "identity", "motion", "items_seen"};
  static double metric(const eval::SegmentScore& s, int m) {
    const double v[kCount] = {s.text_match, s.identity, s.motion, s.items_seen};
    return v[m];
  }

  // `pixels`: measures of the video's frames (boundary_jump, frame_change),
  // each averaged over the videos where it is defined.
  void add(json head, const eval::VideoScore& s, const std::map<std::string, double>& pixels = {}) {
    for (const auto& [key, v] : pixels)
      if (std::isfinite(v)) head[key] = v, pixel_sums_[key].first += v, ++pixel_sums_[key].second;
    json segs = json::array();
    for (size_t k = 0; k < s.segments.size(); ++k) {
      const auto& sg = s.segments[k];
      segs.push_back(segment_json(sg));
      if (sums_.size() <= k) sums_.push_back({}), mid_.push_back((sg.start + sg.end) / 2);
      for (int m = 0; m < kCount; ++m) sums_[k][m] += metric(sg, m);
      sums_[k][kCount] += 1;
    }
    head["overall"] = segment_json(s.overall);
    head["segments"] = segs;
    videos_.push_back(head);
    for (int m = 0; m < kCount; ++m) overall_[m] += metric(s.overall, m);
  }

  // Fills `out` with the means, the per-segment means and the videos.
  void write_to(json& out) const {
    const double n = static_cast<double>(videos_.size());
    for (int m = 0; m < kCount; ++m) out[kMetrics[m]] = overall_[m] / n;
    json segments = json::array();
    for (size_t k = 0; k < sums_.size(); ++k) {
      json j = {{"segment", k}, {"middle_s", mid_[k]}, {"videos", sums_[k][kCount]}};
      for (int m = 0; m < kCount; ++m) j[kMetrics[m]] = sums_[k][m] / sums_[k][kCount];
      segments.push_back(j);
    }
    for (const auto& [key, sum] : pixel_sums_) out[key] = sum.first / sum.second;
    out["videos"] = videos_.size();
    out["segments"] = segments;
    out["per_video"] = videos_;
  }

  // DIR/text_match.png, identity.png, motion.png, items_seen.png: the per-segment means
  // against time, beside those of real videos when given.
  void plot(const std::string& dir, const ScoreReport* real = nullptr) const {
    for (int m = 0; m < kCount; ++m) {
      std::vector<train::Series> lines{series(static_cast<size_t>(m), real ? "generated" : (m == 0 ? "text match" : kMetrics[m]),
                                              {40, 110, 220})};
      if (real) lines.push_back(real->series(static_cast<size_t>(m), "real", {220, 80, 40}));
      image::write_png(dir + "/" + kMetrics[m] + ".png",
                       train::line_plot(lines, "seconds", m == 2 ? "widths per s" : "share of frames"));
    }
  }

  train::Series series(size_t metric, const std::string& label, std::array<uint8_t, 3> colour) const {
    train::Series line{label, colour, mid_, {}};
    for (const auto& s : sums_) line.y.push_back(s[metric] / s[kCount]);
    return line;
  }
  const std::vector<double>& segment_middles() const { return mid_; }

  bool empty() const { return videos_.empty(); }

 private:
  static json segment_json(const eval::SegmentScore& s) {
    return {{"start", s.start},           {"end", s.end},           {"frames", s.frames},
            {"text_match", s.text_match}, {"identity", s.identity}, {"motion", s.motion},
            {"items_seen", s.items_seen}};
  }
  json videos_ = json::array();
  std::vector<std::array<double, kCount + 1>> sums_;  // per segment: each metric's sum, then the videos
  std::vector<double> mid_;
  double overall_[kCount] = {};
  std::map<std::string, std::pair<double, int>> pixel_sums_;
};

// "a/b.mp4" relative to the folder of `out`, when it can be expressed so.
std::string relative_to(const std::string& path, const std::string& out) {
  std::error_code ec;
  auto base = fs::absolute(fs::path(out)).parent_path();
  auto rel = fs::relative(fs::absolute(path), base, ec);
  return ec || rel.empty() ? fs::absolute(path).string() : rel.string();
}

}  // namespace

void add_eval_commands(CLI::App& app, Globals& g) {
  CLI::App* ev = app.add_subcommand("eval", "Evaluation metrics");
  ev->require_subcommand(1);
  struct Args {
    std::string real, fake, detector, device = "cpu";
    int frames = 16, batch = 8;
    double fps = 0;
    int64_t max_videos = 0;
  };
  auto a = std::make_shared<Args>();
  auto* fvd = ev->add_subcommand("fvd", "Fréchet Video Distance (StyleGAN-V protocol) between two sets of videos");
  fvd->add_option("--real", a->real, "Reference videos: a folder or a manifest")->required();
  fvd->add_option("--fake", a->fake, "Generated videos: a folder or a manifest")->required();
  fvd->add_option("--detector", a->detector, "I3D TorchScript file (StyleGAN-V's i3d_torchscript.pt)")->required();
  fvd->add_option("--frames", a->frames, "Consecutive frames per video, from its start (shorter videos are left out)")
      ->check(CLI::Range(1, 10000));
  fvd->add_option("--fps", a->fps, "Read videos at this frame rate; 0 = their own")->check(CLI::Range(0.0, 1000.0));
  fvd->add_option("--max-videos", a->max_videos, "Use at most this many videos of each set; 0 = all")
      ->check(CLI::NonNegativeNumber);
  fvd->add_option("--batch", a->batch, "Clips per detector call")->check(CLI::Range(1, 1024));
  fvd->add_option("--device", a->device, "cpu or cuda[:N]");
  fvd->callback(command(g, [a] {
    const auto real = list_videos(a->real, "--real"), fake = list_videos(a->fake, "--fake");
    eval::VideoFeatureNet net(a->detector, parse_device(a->device));
    auto r = set_features(net, real, a->frames, a->fps, a->max_videos, a->batch);
    auto f = set_features(net, fake, a->frames, a->fps, a->max_videos, a->batch);
    for (const auto* s : {&r, &f})
      if (s->videos < 2)
        fail(s == &r ? "--real" : "--fake", "needs at least 2 videos of " + std::to_string(a->frames) + " frames, got " +
                                                std::to_string(s->videos) + " (" + std::to_string(s->short_videos) +
                                                " too short)");
    const double d = eval::frechet_distance(r.stats.mean(), r.stats.covariance(), f.stats.mean(), f.stats.covariance());
    json out = {{"fvd", d},
                {"frames", a->frames},
                {"detector", a->detector},
                {"real", {{"source", a->real}, {"videos", r.videos}, {"too_short", r.short_videos}}},
                {"fake", {{"source", a->fake}, {"videos", f.videos}, {"too_short", f.short_videos}}}};
    std::cout << out.dump(2) << std::endl;
  }));

  struct ClipArgs {
    std::string clip, bpe, data, device = "cpu";
    int max_frames = 16, batch = 32;
    double fps = 0;
    int64_t max_videos = 0;
  };
  auto c = std::make_shared<ClipArgs>();
  auto* cs = ev->add_subcommand("clipsim", "CLIP similarity between videos' frames and their captions (unscaled cosine)");
  cs->add_option("--clip", c->clip, "CLIP TorchScript file with encode_image and encode_text (e.g. ViT-L-14.pt)")
      ->required();
  cs->add_option("--bpe", c->bpe, "CLIP's BPE merges (bpe_simple_vocab_16e6.txt.gz)")->required();
  cs->add_option("--data", c->data, "Manifest of videos (or images) and their captions")->required();
  cs->add_option("--max-frames", c->max_frames, "Frames per video, spread evenly; 0 = every frame")
      ->check(CLI::NonNegativeNumber);
  cs->add_option("--fps", c->fps, "Read videos at this frame rate; 0 = their own")->check(CLI::Range(0.0, 1000.0));
  cs->add_option("--max-videos", c->max_videos, "Use at most this many entries; 0 = all")->check(CLI::NonNegativeNumber);
  cs->add_option("--batch", c->batch, "Frames per CLIP call")->check(CLI::Range(1, 4096));
  cs->add_option("--device", c->device, "cpu or cuda[:N]");
  cs->callback(command(g, [c] {
    const auto m = data::load_manifest(c->data);
    const auto bpe = eval::ClipBpe::load(c->bpe);
    eval::ClipModel clip(c->clip, parse_device(c->device));
    json per = json::array();
    double sum = 0;
    int64_t frames_total = 0;
    for (const auto& e : m.entries) {
      if (c->max_videos > 0 && static_cast<int64_t>(per.size()) >= c->max_videos) break;
      at::Tensor frames;
      if (e.kind == data::MediaKind::Image) {
        frames = video::read_image(e.path).unsqueeze(0);
      } else {
        video::ReadOptions o;
        o.fps = c->fps;
        o.start = e.start;
        o.end = e.end;
        frames = video::read(e.path, o).frames;
      }
      if (c->max_frames > 0 && frames.size(0) > c->max_frames)
        frames = frames.index_select(0, torch::linspace(0, frames.size(0) - 1, c->max_frames).round().to(torch::kLong));
      auto text = clip.encode_texts(bpe.tokenize({e.caption}));  // [1, D]
      double video_sum = 0;
      for (int64_t i = 0; i < frames.size(0); i += c->batch) {
        auto img = clip.encode_images(frames.narrow(0, i, std::min<int64_t>(c->batch, frames.size(0) - i)));
        video_sum += img.matmul(text[0]).sum().item<double>();
      }
      const double v = video_sum / static_cast<double>(frames.size(0));
      per.push_back({{"video", e.path}, {"caption", e.caption}, {"frames", frames.size(0)}, {"clipsim", v}});
      sum += v;
      frames_total += frames.size(0);
    }
    json out = {{"clipsim", sum / static_cast<double>(per.size())},
                {"videos", per.size()},
                {"frames", frames_total},
                {"clip", c->clip},
                {"per_video", per}};
    std::cout << out.dump(2) << std::endl;
  }));

  // The moving-fashion probe.
  CLI::App* probe = ev->add_subcommand("probe", "A probe that reads moving-fashion ground truth back from frames");
  probe->require_subcommand(1);
  struct ProbeArgs {
    std::string out, tokenizer, from, device = "cpu";
    eval::ProbeConfig cfg;
    eval::ProbeTrainOptions o;
    CLI::Option *crop_channels = nullptr, *crop_window = nullptr, *crop_pixels = nullptr;  // given or not
  };
  auto p = std::make_shared<ProbeArgs>();
  auto* pt = probe->add_subcommand("train", "Train on rendered moving-fashion frames; scores unseen (t10k) items");
  pt->add_option("--out", p->out, "Probe folder to write")->required();
  pt->add_option("--size", p->cfg.image_size, "Frame size (the generated videos'; a multiple of 8)")->check(CLI::Range(16, 1024));
  pt->add_option("--channels", p->cfg.channels, "Width of the first layer")->check(CLI::Range(4, 512));
  pt->add_option("--steps", p->o.steps, "Training steps of the whole probe (0: only the crop classifier's, with --from)")
      ->check(CLI::Range(0, 10000000));
  pt->add_option("--crop-steps", p->o.crop_steps, "Then steps of the crop classifier alone, on --crop-batch fresh stills each")
      ->check(CLI::Range(0, 10000000));
  pt->add_option("--crop-batch", p->o.crop_batch, "Stills per crop-classifier step")->check(CLI::Range(1, 65536));
  pt->add_option("--crop-lr", p->o.crop_lr, "The crop classifier's AdamW learning rate (cosine decay to 10%)")
      ->check(CLI::Range(1e-6, 1.0));
  // The crop classifier's shape. With --from, the loaded probe's weights are
  // kept where their shapes still fit; the rest start anew.
  p->crop_channels =
      pt->add_option("--crop-channels", p->cfg.crop_channels,
                     "The crop classifier's first-layer width (default: --channels; with --from, a new width starts anew)")
          ->check(CLI::Range(4, 512));
  p->crop_window =
      pt->add_option("--crop-window", p->cfg.crop_fraction, "The crop classifier's window, as a fraction of the frame (items are 0.3125)")
          ->check(CLI::Range(0.05, 1.0));
  p->crop_pixels =
      pt->add_option("--crop-pixels", p->cfg.crop_pixels,
                     "The window is resampled to this many pixels a side (a multiple of 4; with --from, a new size starts anew)")
          ->check(CLI::Range(8, 256));
  pt->add_option("--from", p->from, "Start from this trained probe (its config replaces --size and --channels)");
  pt->add_option("--batch", p->o.batch, "Frames per step")->check(CLI::Range(4, 4096));
  pt->add_option("--lr", p->o.lr, "AdamW learning rate (cosine decay to 10%)")->check(CLI::Range(1e-6, 1.0));
  pt->add_option("--heldout", p->o.heldout_videos, "Held-out videos scored at the end")->check(CLI::Range(8, 100000));
  pt->add_option("--tokenizer", p->tokenizer,
                 "Pass training frames through this video tokenizer first (they then look like generated ones)");
  pt->add_option("--seed", p->o.seed, "Seed");
  pt->add_option("--device", p->device, "cpu or cuda[:N]");
  pt->callback(command(g, [p] {
    const auto device = parse_device(p->device);
    if (p->o.steps + p->o.crop_steps == 0) fail("--steps", "nothing to train: --steps and --crop-steps are both 0");
    if (p->o.steps == 0 && p->from.empty())
      fail("--steps", "0 trains only the crop classifier, which needs a trained probe to start from (--from)");
    if (!p->from.empty() && !fs::is_directory(p->from))
      fail("--from", p->from + ": no such probe folder (expected one from `loong eval probe train`)");
    torch::manual_seed(p->o.seed);
    // Named by the flag that sets them (the config's own check names its keys).
    if (p->cfg.image_size % 8 != 0) fail("--size", "expected a multiple of 8, got " + std::to_string(p->cfg.image_size));
    if (p->cfg.crop_pixels % 4 != 0)
      fail("--crop-pixels", "expected a multiple of 4, got " + std::to_string(p->cfg.crop_pixels));
    eval::ProbeNet net = p->from.empty() ? eval::ProbeNet(p->cfg) : eval::load_probe(p->from, device);
    if (!p->from.empty() && (*p->crop_channels || *p->crop_window || *p->crop_pixels)) {
      auto cfg = net->config;  // the loaded probe's, with the crop classifier asked for
      if (*p->crop_channels) cfg.crop_channels = p->cfg.crop_channels;
      if (*p->crop_window) cfg.crop_fraction = p->cfg.crop_fraction;
      if (*p->crop_pixels) cfg.crop_pixels = p->cfg.crop_pixels;
      net = eval::reshaped_probe(net, cfg);
    }
    net->to(device);
    const int size = net->config.image_size;
    if (!p->tokenizer.empty()) {
      auto tok = std::make_shared<tokenizer::VideoTokenizer>(tokenizer::load_model(p->tokenizer, device));
      if ((*tok)->config.image_size != size)
        fail("--tokenizer", "works on " + std::to_string((*tok)->config.image_size) + "-pixel frames but the probe reads " +
                                std::to_string(size) + (p->from.empty() ? " (--size)" : " (--from " + p->from + ")"));
      p->o.degrade = [tok](const torch::Tensor& frames) {
        return tokenizer::decode_video(*tok, tokenizer::encode_video(*tok, frames));
      };
      p->o.degrade_each = [tok](const torch::Tensor& frames) { return tokenizer::round_trip_frames(*tok, frames); };
    }
    const int total = p->o.steps + p->o.crop_steps, every = std::max(1, total / 20);
    p->o.on_step = [every, steps = total](int step, double loss) {
      if (step % every == 0 || step == steps) std::printf("step %d/%d  loss %.4f\n", step, steps, loss), std::fflush(stdout);
    };
    const auto s = eval::train_probe(net, p->o);  // through the tokenizer when given
    eval::save_probe(p->out, net,
                     {{"command", "loong eval probe train"},
                      {"steps", p->o.steps},
                      {"crop_steps", p->o.crop_steps},
                      {"crop_batch", p->o.crop_batch},
                      {"from", p->from},
                      {"tokenizer", p->tokenizer}});
    auto scores = [](const eval::ProbeScores& s) {
      json by_class = json::object();  // recall and items of each class: which classes are missed
      for (size_t c = 0; c < s.class_recall.size(); ++c)
        by_class[data::kFashionClassNames[c]] = {
            {"recall", std::isnan(s.class_recall[c]) ? json(nullptr) : json(s.class_recall[c])},
            {"items", s.class_items[c]}};
      return json{{"frames", s.frames},
                  {"background_accuracy", s.background_accuracy},
                  {"items_exact", s.items_exact},
                  {"class_accuracy", s.class_accuracy},
                  {"colour_accuracy", s.colour_accuracy},
                  {"cell_class_accuracy", s.cell_class_accuracy},
                  {"class_accuracy_by_class", by_class},
                  {"position_error", s.position_error}};
    };
    json out = {{"probe", p->out}};
    if (p->tokenizer.empty()) {
      out["heldout"] = scores(s);
    } else {
      out["heldout"] = scores(eval::score_probe(net, "t10k", p->o.heldout_videos, p->o.seed + 1));
      out["heldout_through_tokenizer"] = scores(s);
    }
    std::cout << out.dump(2) << std::endl;
  }));

  struct ScoreArgs {
    std::string probe, data, json_out, device = "cpu";
    double segment = 10;
  };
  auto sa = std::make_shared<ScoreArgs>();
  auto* ps = probe->add_subcommand("score", "Score videos against their captions with a trained probe (JSON)");
  ps->add_option("--probe", sa->probe, "Probe folder from `loong eval probe train`")->required();
  ps->add_option("--data", sa->data, "Manifest of videos and the prompts they were made from")->required();
  ps->add_option("--segment", sa->segment, "Seconds per scored segment")->check(CLI::Range(0.1, 3600.0));
  ps->add_option("--json", sa->json_out, "Also write the report to this file");
  ps->add_option("--device", sa->device, "cpu or cuda[:N]");
  ps->callback(command(g, [sa] {
    auto net = eval::load_probe(sa->probe, parse_device(sa->device));
    const auto m = data::load_manifest(sa->data);
    ScoreReport report;
    for (const auto& e : m.entries) {
      if (e.kind != data::MediaKind::Video) continue;
      const auto facts = eval::parse_caption(e.caption);
      video::ReadOptions o;
      o.size = net->config.image_size;
      o.start = e.start;
      o.end = e.end;
      const auto v = video::read(e.path, o);
      report.add({{"video", e.path}, {"caption", e.caption}}, eval::score_video(net, v.frames, v.fps, facts, sa->segment));
    }
    if (report.empty()) fail(sa->data, "holds no videos");
    json out = {{"probe", sa->probe}, {"segment_seconds", sa->segment}};
    report.write_to(out);
    if (!sa->json_out.empty()) write_json_file(sa->json_out, out);
    std::cout << out.dump(2) << std::endl;
  }));

  // Generate long videos for held-out prompts, score every segment, plot the scores against time.
  struct LongArgs {
    std::string model, probe, prompts, real, out, device = "cpu";
    double seconds = 60, segment = 10;
    int batch = 4;
    bool no_reencode = false;
    double first_clip_cfg = 0;
    gen::SamplingOptions s;
  };
  auto la = std::make_shared<LongArgs>();
  auto* lg = ev->add_subcommand("long", "Generate a long video per prompt, score each segment with the probe, plot against time");
  lg->add_option("--model", la->model, "Model bundle; default: the repository's models/default, or $LOONG_MODEL");
  lg->add_option("--probe", la->probe, "Probe folder (`loong eval probe train`, at the model's frame size)")->required();
  auto* prompts_opt = lg->add_option("--prompts", la->prompts, "One prompt per line, one video each");
  lg->add_option("--real", la->real,
                 "Manifest of real videos: their captions are the prompts, and each metric and a probe-feature "
                 "Fréchet distance per segment are reported beside them")
      ->excludes(prompts_opt);
  lg->add_option("--out", la->out, "Folder for the videos, report.json and the plots")->required();
  lg->add_option("--seconds", la->seconds, "Length of each video")->check(CLI::Range(0.1, 86400.0));
  lg->add_option("--segment", la->segment, "Seconds per scored segment")->check(CLI::Range(0.1, 3600.0));
  lg->add_option("--batch", la->batch, "Videos generated together")->check(CLI::Range(1, 256));
  lg->add_flag("--no-reencode", la->no_reencode, "Condition clips on the previous clip's tokens (ablation)");
  lg->add_option("--seed", la->s.seed, "Random seed");
  auto* cfg_opt = lg->add_option("--cfg", la->s.cfg_scale, "Classifier-free guidance scale; default: the model's, else 7.5");
  auto* first_cfg_opt = lg->add_option("--first-clip-cfg", la->first_clip_cfg,
                                       "Guidance scale of the first clip; default: the model's unless --cfg is given")
                            ->check(CLI::NonNegativeNumber);
  lg->add_option("--top-k", la->s.top_k, "Top-k sampling");
  lg->add_option("--top-p", la->s.top_p, "Then keep the smallest set of codes holding this probability");
  auto* temp_opt = lg->add_option("--temperature", la->s.temperature, "Softmax temperature; default: the model's, else 1");
  lg->add_option("--device", la->device, "cpu or cuda[:N]");
  lg->callback(command(g, [la, cfg_opt, first_cfg_opt, temp_opt] {
    keep_freed_memory();  // as loong generate
    gen::validate(la->s);
    const auto device = parse_device(la->device);
    if (la->prompts.empty() == la->real.empty()) fail("eval long", "give --prompts or --real");
    std::vector<std::string> prompts;
    std::vector<eval::CaptionFacts> facts;
    std::vector<data::Entry> real;
    if (!la->real.empty()) {
      for (const auto& e : data::load_manifest(la->real).entries)
        if (e.kind == data::MediaKind::Video) real.push_back(e);
      if (real.empty()) fail(la->real, "holds no videos");
      for (const auto& e : real) {
        prompts.push_back(e.caption);
        facts.push_back(eval::parse_caption(e.caption));
      }
    } else {
      for (const auto& e : gen::PromptSchedule::load(la->prompts).entries) {  // one video per line
        prompts.push_back(e.text);
        facts.push_back(eval::parse_caption(e.text));
      }
    }
    la->model = gen::model_or_default(la->model);
    auto bundle = gen::load_bundle(la->model, device);
    gen::resolve_sampling(bundle.info, {cfg_opt->count() > 0, first_cfg_opt->count() > 0, temp_opt->count() > 0}, la->s,
                          la->first_clip_cfg);
    auto net = eval::load_probe(la->probe, device);
    if (net->config.image_size != bundle.tokenizer->config.image_size)
      fail("--probe", "reads " + std::to_string(net->config.image_size) + "-pixel frames but the model makes " +
                          std::to_string(bundle.tokenizer->config.image_size));
    const auto text = text::TextTokenizer::load(bundle.text_dir);
    gen::LongVideoOptions o;
    o.seconds = la->seconds;
    o.fps = bundle.info.fps;
    o.clip_frames = bundle.info.clip_frames;
    o.overlap = bundle.info.overlap;
    o.reencode = !la->no_reencode;
    o.first_clip_cfg = la->first_clip_cfg;
    // Clip boundaries of a T-frame video (the same frame indices for a real one).
    auto pixels = [&](const torch::Tensor& frames) -> std::map<std::string, double> {
      std::vector<int64_t> starts;
      const auto plans = gen::plan_clips(frames.size(0), o.clip_frames, o.overlap,
                                         bundle.tokenizer->config.temporal_factor());
      for (size_t k = 1; k < plans.size(); ++k) starts.push_back(plans[k].start);
      return {{"boundary_jump", eval::boundary_jump(frames, starts)}, {"frame_change", eval::mean_frame_change(frames)}};
    };
    // The real videos first (their first --seconds): a broken one fails before any generation.
    ScoreReport real_report;
    eval::SegmentFeatures real_features(la->segment), fake_features(la->segment);
    for (size_t i = 0; i < real.size(); ++i) {
      const auto& e = real[i];
      video::ReadOptions ro;
      ro.size = net->config.image_size;
      ro.start = e.start;
      ro.end = e.end < 0 ? e.start + la->seconds : std::min(e.end, e.start + la->seconds);
      const auto v = video::read(e.path, ro);
      torch::Tensor f;
      real_report.add({{"video", e.path}, {"caption", e.caption}},
                      eval::score_video(net, v.frames, v.fps, facts[i], la->segment, 64, &f),
                      pixels(v.frames));
      real_features.add(f, v.fps);
    }
    gen::LongVideoGenerator generator(bundle.tokenizer, bundle.lm, bundle.vocab(), la->s);
    make_dirs(la->out + "/videos");
    ScoreReport report;
    for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(la->batch)) {
      const size_t n = std::min(prompts.size() - first, static_cast<size_t>(la->batch));
      std::vector<std::vector<at::Tensor>> frames(n);
      std::vector<std::unique_ptr<video::VideoWriter>> writers;
      video::WriteOptions w;
      w.fps = o.fps;
      w.streaming = true;
      const int S = bundle.tokenizer->config.image_size;
      auto name = [&](size_t i) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%06zu.mp4", first + i);
        return la->out + "/videos/" + buf;
      };
      for (size_t i = 0; i < n; ++i) writers.push_back(std::make_unique<video::VideoWriter>(name(i), S, S, w));
      gen::LongVideoCallbacks cb;
      cb.text = [&](int64_t item, int64_t, double) { return text.encode(prompts[first + static_cast<size_t>(item)]); };
      cb.frames = [&](const at::Tensor& f, int64_t) {
        for (size_t i = 0; i < n; ++i) {
          frames[i].push_back(f[static_cast<int64_t>(i)]);
          writers[i]->write(f[static_cast<int64_t>(i)]);
          writers[i]->flush();
        }
      };
      generator.run(o, static_cast<int64_t>(n), cb);
      for (size_t i = 0; i < n; ++i) {
        writers[i]->close();
        torch::Tensor f;
        const auto all = torch::cat(frames[i]);
        const auto sc = eval::score_video(net, all, o.fps, facts[first + i], la->segment, 64, &f);
        fake_features.add(f, o.fps);
        report.add({{"video", name(i)}, {"prompt", prompts[first + i]}}, sc, pixels(all));
        std::printf("%s: text match %.3f, identity %.3f, motion %.3f, items seen %.3f\n", name(i).c_str(),
                    sc.overall.text_match, sc.overall.identity, sc.overall.motion, sc.overall.items_seen);
        std::fflush(stdout);
      }
    }
    report.plot(la->out, real.empty() ? nullptr : &real_report);
    json out = {{"model", la->model}, {"probe", la->probe},   {"seconds", la->seconds}, {"segment_seconds", la->segment},
                {"reencode", o.reencode}, {"seed", la->s.seed}, {"cfg", la->s.cfg_scale},
                {"first_clip_cfg", la->first_clip_cfg},
                {"top_k", la->s.top_k}, {"top_p", la->s.top_p}, {"temperature", la->s.temperature}};
    report.write_to(out);
    std::string plots = "text_match.png, identity.png, motion.png, items_seen.png";
    if (!real.empty()) {
      json r = {{"manifest", la->real}};
      real_report.write_to(r);
      out["real"] = r;
      // Probe-feature Fréchet distance, generated against real, per segment.
      const auto d = eval::segment_frechet(fake_features, real_features);
      auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
      out["frechet"] = num(d.overall);
      train::Series line{"generated vs real", {40, 110, 220}, {}, {}};
      for (size_t k = 0; k < d.segments.size(); ++k) {
        out["segments"][k]["frechet"] = num(d.segments[k]);
        line.x.push_back(report.segment_middles()[k]);
        line.y.push_back(d.segments[k]);
      }
      image::write_png(la->out + "/frechet.png", train::line_plot({line}, "seconds", "probe frechet distance"));
      plots += ", frechet.png";
    }
    write_json_file(la->out + "/report.json", out);
    std::printf("report: %s/report.json (plots: %s)\n", la->out.c_str(), plots.c_str());
  }));

  // The paper's long-video benchmark: the N longest clips, cut to S seconds.
  struct BenchArgs {
    std::string data, out;
    int64_t count = 1000;
    double seconds = 27;
  };
  auto b = std::make_shared<BenchArgs>();
  auto* bench = ev->add_subcommand("benchmark", "A long-video benchmark: the N longest videos of a manifest, cut to S seconds");
  bench->add_option("--data", b->data, "Manifest to choose from")->required();
  bench->add_option("--out", b->out, "Manifest to write (entries keep their captions; start/end cut them)")->required();
  bench->add_option("--count", b->count, "Videos to take (the paper: 1000)")->check(CLI::PositiveNumber);
  bench->add_option("--seconds", b->seconds, "Length of each (the paper: 27)")->check(CLI::PositiveNumber);
  bench->callback(command(g, [b] {
    const auto m = data::load_manifest(b->data);
    struct Candidate {
      const data::Entry* e;
      double length;
    };
    std::vector<Candidate> c;
    int64_t unreadable = 0, too_short = 0;
    for (const auto& e : m.entries) {
      if (e.kind != data::MediaKind::Video) continue;
      double duration = 0;
      try {
        duration = video::probe(e.path, {}, false).duration;
      } catch (const Error&) {
        ++unreadable;
        continue;
      }
      const double end = e.end < 0 ? duration : std::min(e.end, duration);
      const double length = end - e.start;
      if (length + 1e-6 < b->seconds) ++too_short;
      else c.push_back({&e, length});
    }
    if (c.empty())
      fail(b->data, "no video is at least " + std::to_string(b->seconds) + " s long (" + std::to_string(too_short) +
                        " shorter, " + std::to_string(unreadable) + " unreadable)");
    std::stable_sort(c.begin(), c.end(), [](const Candidate& x, const Candidate& y) { return x.length > y.length; });
    if (static_cast<int64_t>(c.size()) > b->count) c.resize(static_cast<size_t>(b->count));
    std::string lines;
    for (const auto& k : c) {
      json j = k.e->extra;
      j["video"] = relative_to(k.e->path, b->out);
      j["caption"] = k.e->caption;
      j["start"] = k.e->start;
      j["end"] = k.e->start + b->seconds;
      lines += j.dump() + "\n";
    }
    write_file_atomic(b->out, lines);
    std::cout << json{{"out", b->out},
                      {"videos", c.size()},
                      {"asked", b->count},
                      {"seconds", b->seconds},
                      {"longest_s", c.front().length},
                      {"shortest_kept_s", c.back().length},
                      {"too_short", too_short},
                      {"unreadable", unreadable}}
                     .dump(2)
              << std::endl;
  }));
}

}  // namespace loong::cli
