// loong video info | convert | sheet
#include <cstdio>
#include <iostream>

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
#ifndef LOONG_WITH_FFMPEG
      throw Error("this build has no FFmpeg support (configure with -DLOONG_WITH_FFMPEG=ON)");
#else
      std::cout << video::probe(*path, *limits).to_json().dump(2) << std::endl;
#endif
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
#ifndef LOONG_WITH_FFMPEG
      throw Error("this build has no FFmpeg support (configure with -DLOONG_WITH_FFMPEG=ON)");
#else
      video::Video v = video::read(*in, *r);
      w->fps = v.fps > 0 ? v.fps : 25;
      video::write(*out, v.frames, *w);
      std::printf("%s: %lld frames, %lldx%lld at %.4g fps\n", out->c_str(),
                  static_cast<long long>(v.frames.size(0)), static_cast<long long>(v.frames.size(2)),
                  static_cast<long long>(v.frames.size(1)), w->fps);
#endif
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
#ifndef LOONG_WITH_FFMPEG
      throw Error("this build has no FFmpeg support (configure with -DLOONG_WITH_FFMPEG=ON)");
#else
      video::Video v = video::read(*in, *r);
      image::write_png(*out, image::contact_sheet(v.frames, *tiles, *cols));
      std::printf("%s: %d of %lld frames\n", out->c_str(),
                  static_cast<int>(std::min<int64_t>(*tiles, v.frames.size(0))),
                  static_cast<long long>(v.frames.size(0)));
#endif
    }));
  }
}

}  // namespace loong::cli
