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
      // Stream: frames go from the reader to the writer one at a time, so a long
      // or large video never has to fit in memory.
      video::validate(*r);
      const video::Info info = video::probe(*in, *r, /*count_frames=*/false);  // header only
      // Without a video stream, read_frames below says exactly what is wrong.
      const double native = info.video_stream >= 0 ? info.streams[info.video_stream].fps : 0;
      w->fps = r->fps > 0 ? r->fps : (native > 0 ? native : 25);
      std::unique_ptr<video::VideoWriter> writer;
      int64_t n = 0;
      int width = 0, height = 0;
      video::read_frames(*in, *r, [&](const at::Tensor& f, double) {
        if (!writer) {
          width = static_cast<int>(f.size(1));
          height = static_cast<int>(f.size(0));
          writer = std::make_unique<video::VideoWriter>(*out, width, height, *w);
        }
        writer->write(f);
        ++n;
        return true;
      });
      if (!writer) fail(*in, "no frames in the requested range");
      writer->close();
      std::printf("%s: %lld frames, %dx%d at %.4g fps\n", out->c_str(), static_cast<long long>(n), width,
                  height, w->fps);
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
      // Keep only the frames shown: the first at or after each of `tiles`
      // evenly spaced times over the clip's duration.
      video::validate(*r);
      const video::Info info = video::probe(*in, *r, /*count_frames=*/false);  // header only
      const double start = r->start;
      double end = info.duration > 0 ? info.duration : 0;
      if (r->end >= 0 && (end <= 0 || r->end < end)) end = r->end;
      std::vector<at::Tensor> shown, all;
      int64_t total = 0;
      video::read_frames(*in, *r, [&](const at::Tensor& f, double t) {
        ++total;
        if (end <= start) {  // unknown duration: keep everything (bounded by --max-frames)
          all.push_back(f);
          return true;
        }
        const double next = start + (end - start) * static_cast<double>(shown.size()) / *tiles;
        if (static_cast<int>(shown.size()) < *tiles && t + 1e-6 >= next) shown.push_back(f);
        return true;
      });
      if (total == 0) fail(*in, "no frames in the requested range");
      if (!all.empty()) {
        for (int64_t i : image::spread_indices(static_cast<int64_t>(all.size()), *tiles)) shown.push_back(all[i]);
      }
      image::write_png(*out, image::grid(shown, *cols));
      std::printf("%s: %zu of %lld frames\n", out->c_str(), shown.size(), static_cast<long long>(total));
#endif
    }));
  }
}

}  // namespace loong::cli
