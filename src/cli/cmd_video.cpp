// loong video info | convert | sheet
#include <cstdio>
#include <iostream>
#include <memory>

#include <torch/torch.h>

#include "cli/commands.h"
#include "loong/core/error.h"
#include "loong/io/image.h"
#include "loong/io/video.h"

namespace loong::cli {

void add_video_commands(CLI::App& app, Globals& g) {
  CLI::App* video = app.add_subcommand("video", "Inspect and convert videos (FFmpeg)");
  video->require_subcommand(1);

  {
    auto* cmd = video->add_subcommand("info", "Print streams, size, fps, duration and frame count as JSON");
    auto path = std::make_shared<std::string>();
    auto limits = std::make_shared<video::ReadOptions>();
    cmd->add_option("file", *path, "Video file")->required();
    cmd->add_option("--max-pixels", limits->max_pixels, "Refuse frames larger than this many pixels")
        ->check(CLI::PositiveNumber);
    cmd->callback(command(g, [path, limits] {
      std::cout << video::probe(*path, *limits).to_json().dump(2) << std::endl;
    }));
  }
  {
    auto* cmd = video->add_subcommand(
        "convert", "Decode, resample to --fps, resize to --size (shorter side, centre crop) and write MP4 or GIF: "
                   "exactly the preprocessing training uses");
    auto in = std::make_shared<std::string>(), out = std::make_shared<std::string>();
    auto r = std::make_shared<video::ReadOptions>();
    auto w = std::make_shared<video::WriteOptions>();
    r->fps = 6.5;
    r->size = 128;
    cmd->add_option("input", *in, "Input video")->required();
    cmd->add_option("output", *out, "Output .mp4 or .gif")->required();
    add_read_options(cmd, *r);
    cmd->add_option("--crf", w->crf, "H.264 quality: 0 lossless .. 51 worst")->check(CLI::Range(0, 51));
    cmd->callback(command(g, [in, out, r, w] {
      const auto res = video::convert(*in, *out, *r, *w);
      std::printf("%s: %lld frames, %dx%d at %.4g fps\n", out->c_str(), static_cast<long long>(res.frames), res.width,
                  res.height, res.fps);
    }));
  }
  {
    auto* cmd = video->add_subcommand("sheet", "Write a PNG contact sheet (a grid of evenly spaced frames)");
    auto in = std::make_shared<std::string>(), out = std::make_shared<std::string>();
    auto r = std::make_shared<video::ReadOptions>();
    auto tiles = std::make_shared<int>(16);
    auto cols = std::make_shared<int>(0);
    r->size = 128;
    cmd->add_option("input", *in, "Input video or image")->required();
    cmd->add_option("output", *out, "Output .png")->required();
    add_read_options(cmd, *r);
    cmd->add_option("--tiles", *tiles, "Number of frames on the sheet")->check(CLI::Range(1, 1024));
    cmd->add_option("--cols", *cols, "Columns; 0 = near-square grid")->check(CLI::Range(0, 1024));
    cmd->callback(command(g, [in, out, r, tiles, cols] {
      const auto res = video::write_sheet(*in, *out, *r, *tiles, *cols);
      std::printf("%s: %lld of %lld frames\n", out->c_str(), static_cast<long long>(res.shown),
                  static_cast<long long>(res.total));
    }));
  }
}

}  // namespace loong::cli
