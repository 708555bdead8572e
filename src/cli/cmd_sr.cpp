// loong sr train: a small learned super-resolution network for generated frames.
#include <iostream>

#include <torch/torch.h>

#include "cli/commands.h"
#include "loong/core/error.h"
#include "loong/core/runtime.h"
#include "loong/gen/sr.h"

namespace loong::cli {

void add_sr_commands(CLI::App& app, Globals& g) {
  CLI::App* sr = app.add_subcommand("sr", "Learned super-resolution of generated frames");
  sr->require_subcommand(1);
  struct Args {
    std::string data, out, device = "cpu";
    int size = 64, frames = 400;
    double fps = 1;
    gen::SrConfig cfg;
    gen::SrTrainOptions o;
  };
  auto a = std::make_shared<Args>();
  auto* train = sr->add_subcommand("train", "Train on frames of a dataset (low resolution made by area averaging)");
  train->add_option("--data", a->data, "Manifest of videos and images")->required();
  train->add_option("--out", a->out, "Model folder to write (use with `loong generate --sr-model`)")->required();
  train->add_option("--size", a->size, "Low-resolution frame size: the generated frames' (64 tiny, 128 paper)")
      ->check(CLI::Range(8, 1024));
  train->add_option("--scale", a->cfg.scale, "Upscaling factor")->check(CLI::Range(2, 4));
  train->add_option("--channels", a->cfg.channels, "Network width")->check(CLI::Range(4, 256));
  train->add_option("--layers", a->cfg.layers, "3x3 convolutions before the pixel shuffle")->check(CLI::Range(1, 16));
  train->add_option("--frames", a->frames, "Frames to take from the dataset (10% are held out and scored)")
      ->check(CLI::Range(10, 100000));
  train->add_option("--fps", a->fps, "Frames per second taken from each video")->check(CLI::Range(0.01, 100.0));
  train->add_option("--steps", a->o.steps, "Training steps")->check(CLI::Range(1, 10000000));
  train->add_option("--batch", a->o.batch, "Crops per step")->check(CLI::Range(1, 4096));
  train->add_option("--crop", a->o.crop, "Low-resolution crop side")->check(CLI::Range(4, 1024));
  train->add_option("--lr", a->o.lr, "Adam learning rate")->check(CLI::Range(1e-6, 1.0));
  train->add_option("--seed", a->o.seed, "Seed");
  train->add_option("--device", a->device, "cpu or cuda[:N]");
  train->callback(command(g, [a] {
    if (a->o.crop > a->size) fail("--crop", "must be at most --size (" + std::to_string(a->size) + ")");
    const auto all = gen::sr_training_frames(a->data, a->size * a->cfg.scale, a->fps, a->frames);
    const int64_t count = all.size(0);
    torch::manual_seed(a->o.seed);
    gen::SrNet net(a->cfg);
    net->to(parse_device(a->device));
    const int every = std::max(1, a->o.steps / 10);
    a->o.on_step = [every, steps = a->o.steps](int step, double loss) {
      if (step % every == 0 || step == steps)
        std::printf("step %d/%d  l1 %.4f\n", step, steps, loss), std::fflush(stdout);
    };
    const auto r = gen::train_sr(net, all, std::max<int64_t>(1, count / 10), a->o);
    gen::save_sr(a->out, net, {{"command", "loong sr train"}, {"data", a->data}, {"frames", count}, {"steps", a->o.steps}});
    std::printf("held-out PSNR: %.2f dB (bicubic %.2f dB) on %lld frames\nmodel: %s\n", r.psnr_sr, r.psnr_bicubic,
                static_cast<long long>(r.heldout_frames), a->out.c_str());
  }, Heap::Training));
}

}  // namespace loong::cli
