// Decode + resample + resize of a 640x480 H.264 file to 128x128 at 6.5 fps
// (the training preprocessing), against the ffmpeg program doing the same in
// the same run. Prints one JSON object.
//
//   bench_video_decode [--seconds 20] [--runs 5] [--threads 0]
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include "bench_common.h"
#include "loong/core/runtime.h"
#include "loong/io/video.h"

namespace fs = std::filesystem;
using loong::bench::median;
using loong::bench::time_ms;

namespace {

// A 640x480, 30 fps clip with motion and texture (a codec has real work to do).
void make_input(const std::string& path, double seconds) {
  const int64_t H = 480, W = 640, T = std::max<int64_t>(1, static_cast<int64_t>(seconds * 30));
  auto y = torch::linspace(0, 1, H).view({H, 1}), x = torch::linspace(0, 1, W).view({1, W});
  torch::manual_seed(0);
  auto tex = torch::nn::functional::interpolate(
      torch::rand({1, 3, H / 16, W / 16}),
      torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{H, W}).mode(torch::kBilinear).align_corners(false))[0];
  loong::video::WriteOptions o;
  o.fps = 30;
  o.crf = 23;
  o.preset = "veryfast";
  loong::video::VideoWriter w(path, W, H, o);
  for (int64_t t = 0; t < T; ++t) {
    double p = t / 30.0;
    auto r = 0.5 + 0.4 * torch::sin(8 * x + 3 * y + 2 * p);
    auto g = 0.5 + 0.4 * torch::cos(6 * y - 4 * x + 1.5 * p);
    auto b = 0.5 + 0.4 * torch::sin(5 * (x + y) - p);
    auto img = torch::stack({r.expand({H, W}), g.expand({H, W}), b.expand({H, W})}) + 0.3 * (tex.roll(t * 4, 1) - 0.5);
    w.write((img.clamp(0, 1) * 255).to(torch::kUInt8).permute({1, 2, 0}).contiguous());
  }
  w.close();
}

int run_ffmpeg(const std::string& in, const std::string& out, int threads) {
  const std::string cmd = "ffmpeg -nostdin -v error -y -threads " + std::to_string(threads) + " -i '" + in +
                          "' -vf 'fps=6.5,scale=128:128:force_original_aspect_ratio=increase:flags=area,crop=128:128'"
                          " -f rawvideo -pix_fmt rgb24 '" + out + "'";
  int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 20;
  int runs = 5, threads = 0;
  CLI::App app{"Video decode + resample + resize against the ffmpeg program"};
  app.add_option("--seconds", seconds, "Length of the test video")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--runs", runs, "Repetitions; medians are reported")->check(CLI::Range(1, 1000000));
  app.add_option("--threads", threads, "Decoder threads for both (0 = automatic)")->check(CLI::Range(0, 4096));
  CLI11_PARSE(app, argc, argv);
  loong::init_threads(0);
  const fs::path dir = fs::temp_directory_path() / ("loong_bench_decode_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string in = (dir / "in.mp4").string(), raw = (dir / "out.rgb").string();
  make_input(in, seconds);
  // The ffmpeg program pays process start-up and library loading on every run;
  // a one-frame file of the same size measures that part.
  const std::string one = (dir / "one.mp4").string();
  make_input(one, 1.0 / 30);
  if (run_ffmpeg(in, raw, threads) != 0) {
    std::cerr << "the ffmpeg program is needed as the baseline (apt-get install ffmpeg)\n";
    return 1;
  }
  loong::video::ReadOptions ro;
  ro.fps = 6.5;
  ro.size = 128;
  ro.threads = threads;
  std::vector<double> ours, theirs, startup;
  int64_t our_frames = 0, ffmpeg_frames = 0;
  for (int r = 0; r < runs; ++r) {  // interleaved, so drift hits both alike
    ours.push_back(time_ms([&] { our_frames = loong::video::read(in, ro).frames.size(0); }));
    theirs.push_back(time_ms([&] { run_ffmpeg(in, raw, threads); }));
    ffmpeg_frames = static_cast<int64_t>(fs::file_size(raw) / (128 * 128 * 3));
    startup.push_back(time_ms([&] { run_ffmpeg(one, raw, threads); }));
  }
  const double o = median(ours), f = median(theirs), s0 = median(startup);
  nlohmann::json j = {{"benchmark", "video_decode"},
                      {"input", "640x480 H.264 (libx264 crf 23), 30 fps"}, {"input_seconds", seconds},
                      {"output", "128x128 RGB at 6.5 fps (shorter side, centre crop)"},
                      {"runs", runs}, {"decoder_threads", threads}, {"torch_threads", at::get_num_threads()},
                      {"frames_ours", our_frames}, {"frames_ffmpeg", ffmpeg_frames},
                      {"ours_ms_median", o}, {"ffmpeg_ms_median", f},
                      {"ffmpeg_startup_ms_median", s0},
                      {"ratio_time_ours_over_ffmpeg", o / f},
                      {"ratio_time_ours_over_ffmpeg_without_startup", o / std::max(1.0, f - s0)},
                      {"ours_ms_all", ours}, {"ffmpeg_ms_all", theirs}};
  std::cout << j.dump() << std::endl;
  fs::remove_all(dir);
  return 0;
}
