// loong eval fvd | clipsim | probe train | probe score | long | benchmark:
// the options of each; the work is in loong/eval/.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <torch/torch.h>

#include "cli/commands.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/core/runtime.h"
#include "loong/data/moving_fashion.h"
#include "loong/eval/benchmark.h"
#include "loong/eval/clipsim.h"
#include "loong/eval/fvd.h"
#include "loong/eval/long_eval.h"
#include "loong/eval/probe.h"
#include "loong/eval/probe_train.h"
#include "loong/eval/report.h"
#include "loong/tokenizer/checkpoint.h"

namespace fs = std::filesystem;

namespace loong::cli {

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
    eval::FvdOptions o;
    o.real = a->real, o.fake = a->fake, o.detector = a->detector;
    o.frames = a->frames, o.fps = a->fps, o.max_videos = a->max_videos, o.batch = a->batch;
    o.device = a->device;
    std::cout << eval::fvd_report(o).dump(2) << std::endl;
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
    eval::ClipsimOptions o;
    o.clip = c->clip, o.bpe = c->bpe, o.data = c->data;
    o.max_frames = c->max_frames, o.fps = c->fps, o.max_videos = c->max_videos, o.batch = c->batch;
    o.device = c->device;
    std::cout << eval::clipsim_report(o).dump(2) << std::endl;
  }));

  // The moving-fashion probe.
  CLI::App* probe = ev->add_subcommand("probe", "A probe that reads moving-fashion ground truth back from frames");
  probe->require_subcommand(1);
  struct ProbeArgs {
    std::string out, tokenizer, from, world, device = "cpu";
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
  pt->add_option("--world", p->world,
                 "Train on the world of this moving-fashion dataset (its folder or dataset.json: item size, classes, "
                 "two items, bouncing); the crop window then follows its item size. Default: the generator's default");
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
      fail_input("--from", p->from + ": no such probe folder (expected one from `loong eval probe train`)");
    torch::manual_seed(p->o.seed);
    // Named by the flag that sets them (the config's own check names its keys).
    if (p->cfg.image_size % 8 != 0) fail("--size", "expected a multiple of 8, got " + std::to_string(p->cfg.image_size));
    if (p->cfg.crop_pixels % 4 != 0)
      fail("--crop-pixels", "expected a multiple of 4, got " + std::to_string(p->cfg.crop_pixels));
    if (!p->world.empty()) {
      const fs::path file = fs::is_directory(p->world) ? fs::path(p->world) / "dataset.json" : fs::path(p->world);
      if (!fs::is_regular_file(file))
        fail_input("--world", file.string() + ": no such file (expected a `loong data moving-fashion` folder or its dataset.json)");
      const json info = read_json_file(file.string());
      if (!info.is_object() || !info.contains("world"))
        fail_input("--world", file.string() + ": no \"world\" key (a dataset written before worlds were recorded "
                              "is the default world: leave --world out)");
      data::MovingFashionOptions w;
      data::set_world(w, info["world"], "--world " + file.string());
      p->cfg.world = data::world_json(w);
      // A window a fifth wider than the item, resampled to about its own pixels.
      if (!*p->crop_window) p->cfg.crop_fraction = std::min(1.0, w.item_size * 1.2);
      if (!*p->crop_pixels)
        p->cfg.crop_pixels = std::max(8, static_cast<int>(std::lround(p->cfg.crop_fraction * p->cfg.image_size / 4.0)) * 4);
    }
    eval::ProbeNet net = p->from.empty() ? eval::ProbeNet(p->cfg) : eval::load_probe(p->from, device);
    if (!p->from.empty() && !p->world.empty()) {
      auto cfg = net->config;
      cfg.world = p->cfg.world;
      net = eval::reshaped_probe(net, cfg);
    }
    if (!p->from.empty() && (*p->crop_channels || *p->crop_window || *p->crop_pixels)) {
      auto cfg = net->config;  // the loaded probe's, with the crop classifier asked for
      if (*p->crop_channels) cfg.crop_channels = p->cfg.crop_channels;
      if (*p->crop_window) cfg.crop_fraction = p->cfg.crop_fraction;
      if (*p->crop_pixels) cfg.crop_pixels = p->cfg.crop_pixels;
      net = eval::reshaped_probe(net, cfg);
    }
    net->to(device);
    const int size = net->config.image_size;
    if (!p->tokenizer.empty())
      eval::degrade_through(p->o, tokenizer::load_model(p->tokenizer, device), size,
                            p->from.empty() ? " (--size)" : " (--from " + p->from + ")");
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
    json out = {{"probe", p->out}};
    if (p->tokenizer.empty()) {
      out["heldout"] = eval::to_json(s);
    } else {
      out["heldout"] = eval::to_json(eval::score_probe(net, "t10k", p->o.heldout_videos, p->o.seed + 1));
      out["heldout_through_tokenizer"] = eval::to_json(s);
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
    json out = eval::score_manifest(net, sa->data, sa->segment);
    out["probe"] = sa->probe;
    out["segment_seconds"] = sa->segment;
    if (!sa->json_out.empty()) write_json_file(sa->json_out, out);
    std::cout << out.dump(2) << std::endl;
  }));

  // Generate long videos for held-out prompts, score every segment, plot the scores against time.
  struct LongArgs {
    std::string model, probe, prompts, real, out, device = "cpu", decode_weights = "f32";
    double seconds = 60, segment = 10;
    int batch = 4;
    bool no_reencode = false, tokenizer_f32 = false;
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
  const auto sampling = add_sampling_options(lg, la->s, la->first_clip_cfg);
  add_decode_weights_option(lg, la->decode_weights);
  add_tokenizer_f32_option(lg, la->tokenizer_f32);
  lg->add_option("--device", la->device, "cpu or cuda[:N]");
  lg->callback(command(g, [la, sampling] {
    eval::LongEvalOptions o;
    o.model = la->model, o.probe = la->probe, o.prompts = la->prompts, o.real = la->real, o.out = la->out;
    o.seconds = la->seconds, o.segment = la->segment, o.batch = la->batch, o.reencode = !la->no_reencode;
    o.sampling = la->s;
    o.given = sampling.given();
    o.first_clip_cfg = la->first_clip_cfg;
    o.device = la->device;
    o.decode_weights = la->decode_weights;
    o.tokenizer_f32 = la->tokenizer_f32;
    eval::run_long_eval(o, [](const std::string& line) { std::printf("%s\n", line.c_str()), std::fflush(stdout); });
    std::printf("report: %s/report.json (plots: text_match.png, identity.png, motion.png, items_seen.png%s)\n",
                la->out.c_str(), la->real.empty() ? "" : ", frechet.png");
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
    std::cout << eval::write_long_benchmark({b->data, b->out, b->count, b->seconds}).dump(2) << std::endl;
  }));
}

}  // namespace loong::cli
