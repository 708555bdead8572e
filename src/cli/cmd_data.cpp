// loong data check | moving-fashion
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "loong/core/error.h"
#include "loong/data/manifest.h"
#include "loong/data/moving_fashion.h"
#include "loong/data/dataset.h"

namespace loong::cli {

void add_data_commands(CLI::App& app, Globals& g) {
  CLI::App* data = app.add_subcommand("data", "Text-video datasets: check manifests, generate moving-fashion");
  data->require_subcommand(1);

  {
    auto* cmd = data->add_subcommand(
        "check", "Parse a manifest (JSONL or CSV) and decode every entry; report the bad ones (path, reason)");
    auto path = std::make_shared<std::string>();
    auto r = std::make_shared<video::ReadOptions>();
    auto frames = std::make_shared<int64_t>(0);
    auto as_json = std::make_shared<bool>(false);
    r->fps = 6.5;
    r->size = 128;
    cmd->add_option("manifest", *path, "Manifest (.jsonl or .csv)")->required();
    add_read_options(cmd, *r, false);
    cmd->add_option("--frames", *frames, "Also require at least this many frames per video; 0 = any")
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("--json", *as_json, "Print a JSON report instead of text");
    cmd->callback(command(g, [path, r, frames, as_json] {
      data::ClipOptions opts;
      opts.read = *r;
      opts.frames = *frames;
      const auto report = data::check_report(*path, opts);
      const auto& malformed = report["malformed_lines"];
      const size_t bad_count = malformed.size() + report["bad"].size();
      if (*as_json) {
        std::cout << report.dump(2) << std::endl;
      } else {
        for (const auto& e : malformed) std::printf("MALFORMED %s\n", e.get<std::string>().c_str());
        for (const auto& b : report["bad"])
          std::printf("BAD %s:%d %s\n", path->c_str(), b["line"].get<int>(), b["reason"].get<std::string>().c_str());
        std::printf("%zu ok, %zu bad, %zu malformed line(s)\n", report["ok"].get<size_t>(),
                    report["bad"].size(), malformed.size());
      }
      if (bad_count > 0)
        throw Error(*path + ": " + std::to_string(bad_count) + " problem(s) found");
    }));
  }
  {
    auto* cmd = data->add_subcommand(
        "moving-fashion",
        "Generate a text-video dataset of tinted Fashion-MNIST items moving on coloured backgrounds "
        "(MP4s, captions, per-frame ground truth, manifest, contact sheet)");
    auto o = std::make_shared<data::MovingFashionOptions>();
    auto out = std::make_shared<std::string>();
    auto quiet = std::make_shared<bool>(false);
    auto force = std::make_shared<bool>(false);
    auto shard = std::make_shared<std::string>("0/1");
    cmd->add_option("--out", *out, "Output folder (new or empty)")->required();
    auto* shard_opt = cmd->add_option(
        "--shard", *shard,
        "Write only videos and images i, i+N, i+2N, ... as part i of N (many machines, one dataset; the part that "
        "finds all N written merges the manifests); under torchrun or Slurm the default is this rank's part");
    cmd->add_flag("--force", *force, "Write into a non-empty folder, replacing files of the same names");
    cmd->add_option("--videos", o->videos, "Number of videos")->check(CLI::NonNegativeNumber);
    cmd->add_option("--seconds", o->seconds, "Seconds per video")->check(CLI::PositiveNumber);
    cmd->add_option("--size", o->size, "Frame size (square)")->check(CLI::Range(16, 1024));
    cmd->add_option("--fps", o->fps, "Frames per second")->check(CLI::PositiveNumber);
    cmd->add_option("--seed", o->seed, "Random seed; the dataset is a pure function of the options");
    cmd->add_option("--images", o->images, "Captioned still images for stage-1 training")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--split", o->split, "Fashion-MNIST split: train, or t10k for held-out items")
        ->check(CLI::IsMember({"train", "t10k"}));
    cmd->add_option("--two-items", o->two_items, "Probability of two items per video/image")
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--scene-changes", o->scene_changes,
                    "Probability of a scene change in each 10 s after the first (long videos)")
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--item-size", o->item_size,
                    "Item width as a fraction of the frame (0.3125: 20 pixels at 64; 0.4375: Fashion-MNIST's 28)")
        ->check(CLI::Range(0.05, 0.5));
    auto classes = std::make_shared<std::string>();
    cmd->add_option("--classes", *classes,
                    "The classes items are drawn from, comma-separated indices or names (0 t-shirt, 1 pair of "
                    "trousers, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle boot); "
                    "default all");
    cmd->add_flag("--items-bounce", o->items_bounce, "Items bounce off each other as off the walls (never overlap)");
    cmd->add_option("--mnist-dir", o->mnist_dir, "Fashion-MNIST folder; empty = $LOONG_FASHION_MNIST or Debian's");
    cmd->add_flag("--quiet", *quiet, "Do not print a line per video");
    cmd->callback(command(g, [o, out, quiet, force, shard, shard_opt, classes] {
      if (!classes->empty()) o->classes = data::parse_classes(*classes, "--classes");
      const auto [part, parts] = shard_part(*shard, shard_opt->count() > 0);
      const auto r = data::write_moving_fashion_part(*o, *out, part, parts, !*quiet, *force);
      if (parts == 1) {
        std::printf("wrote %d videos and %d images to %s (manifest.jsonl, images.jsonl, sheet.png)\n", o->videos,
                    o->images, out->c_str());
      } else {
        std::printf("part %d of %d: wrote its share of %d videos and %d images to %s; %s\n", part, parts, o->videos,
                    o->images, out->c_str(),
                    r.merged ? "every part is there: manifest.jsonl and images.jsonl written"
                             : (std::to_string(r.parts_present) + " of " + std::to_string(parts) +
                                " parts there so far: the last part to finish writes the manifests")
                                   .c_str());
      }
    }));
  }
}

}  // namespace loong::cli
