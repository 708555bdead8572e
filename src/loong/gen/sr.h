// Learned super-resolution of generated frames (paper §3.3 post-processing).
//
// SrNet is small (ESPCN-like): convolutions at low resolution, a pixel
// shuffle to the output size, added to a bicubic upscale, so it learns only
// the detail bicubic misses. It is trained by `loong sr train` on frames of a
// dataset: high-resolution frames and low-resolution ones made from them by
// area averaging (the downscaling the video reader applies to training data).
//
// `--sr-model` takes either an SrNet folder (model.safetensors + config.json,
// format "loong-sr") or a TorchScript file (.pt/.ts) whose forward maps float
// [B, 3, H, W] in [0, 1] to [B, 3, sH, sW] in [0, 1] (any upscaler exported
// from Python with torch.jit.trace or torch.jit.script).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>
#include <torch/nn.h>

#include "loong/gen/upscale.h"

namespace loong::gen {

struct SrConfig {
  int scale = 4;      // 2, 3 or 4
  int channels = 32;
  int layers = 3;     // 3x3 convolutions before the shuffle

  nlohmann::json to_json() const;
  static SrConfig from_json(const nlohmann::json& j, const std::string& where);
};

struct SrNetImpl : torch::nn::Module {
  explicit SrNetImpl(SrConfig c);
  // float [B, 3, H, W] in [0, 1] -> [B, 3, sH, sW] (not clamped)
  torch::Tensor forward(const torch::Tensor& x);
  SrConfig config;
  torch::nn::Sequential body{nullptr};
};
TORCH_MODULE(SrNet);

// uint8 frames [T, H, W, 3] <-> float [T, 3, H, W] in [0, 1]
torch::Tensor frames_to_unit(const torch::Tensor& frames);
torch::Tensor unit_to_frames(const torch::Tensor& x);
// Area-average downscale by an integer factor: uint8 [T, H, W, 3] -> [T, H/s, W/s, 3] as float [T, 3, h, w].
torch::Tensor downscale_unit(const torch::Tensor& frames, int scale);

struct SrTrainOptions {
  int steps = 600;
  int batch = 16;
  int crop = 32;        // low-resolution crop side
  double lr = 2e-3;
  uint64_t seed = 0;
  std::function<void(int step, double loss)> on_step;
};

struct SrTrainResult {
  double psnr_sr = 0, psnr_bicubic = 0;  // on the held-out frames
  int64_t train_frames = 0, heldout_frames = 0;
};

// Trains `net` on high-resolution frames uint8 [N, H, W, 3] (H, W multiples
// of the scale); the last `heldout` frames are kept out and scored.
SrTrainResult train_sr(SrNet& net, const torch::Tensor& frames, int64_t heldout, const SrTrainOptions& o);

void save_sr(const std::string& dir, const SrNet& net, const nlohmann::json& provenance = {});

// `loong sr train`'s data: up to `max_frames` high-resolution frames
// (hr_size x hr_size) from a manifest's images and videos (`fps` frames a
// second of each video), uint8 [N, hr_size, hr_size, 3]. Fails naming the
// manifest when it gives fewer than 10.
torch::Tensor sr_training_frames(const std::string& manifest, int hr_size, double fps, int64_t max_frames);
SrNet load_sr(const std::string& dir, c10::Device device = c10::Device("cpu"));

// An upscaler from `path`: an SrNet folder or a TorchScript file. `scale`
// receives the factor (a TorchScript model's is found by running it once on
// a small input). Errors name the path.
Upscaler load_upscaler(const std::string& path, c10::Device device, int* scale);

}  // namespace loong::gen
