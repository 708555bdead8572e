#include "loong/gen/sr.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <random>

#include <torch/script.h>
#include <torch/torch.h>

#include "loong/core/error.h"
#include "loong/core/torchscript.h"
#include "loong/core/json_util.h"
#include "loong/data/manifest.h"
#include "loong/io/video.h"
#include "loong/store/checkpoints.h"

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace loong::gen {

namespace {
constexpr const char* kFormat = "loong-sr";

torch::Tensor bicubic(const torch::Tensor& x, int scale) {
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{x.size(2) * scale, x.size(3) * scale})
                               .mode(torch::kBicubic)
                               .align_corners(false));
}

double psnr_unit(const torch::Tensor& a, const torch::Tensor& b) {
  const double mse = (a.clamp(0, 1) - b).pow(2).mean().item<double>();
  return 10 * std::log10(1.0 / std::max(mse, 1e-12));
}
}  // namespace

json SrConfig::to_json() const { return {{"scale", scale}, {"channels", channels}, {"layers", layers}}; }

SrConfig SrConfig::from_json(const json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "expected a JSON object");
  SrConfig c;
  ObjectReader r(j, where);
  r.integer("scale", c.scale, 2, 4);
  r.integer("channels", c.channels, 4, 256);
  r.integer("layers", c.layers, 1, 16);
  r.finish();
  return c;
}

SrNetImpl::SrNetImpl(SrConfig c) : config(c) {
  body = register_module("body", torch::nn::Sequential());
  int in = 3;
  for (int i = 0; i < config.layers; ++i) {
    body->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, config.channels, 3).padding(1)));
    body->push_back(torch::nn::ReLU());
    in = config.channels;
  }
  body->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, 3 * config.scale * config.scale, 3).padding(1)));
  // Start as plain bicubic: the detail branch begins at zero.
  auto last = body->ptr<torch::nn::Conv2dImpl>(body->size() - 1);
  torch::NoGradGuard ng;
  last->weight.mul_(0.1);
  last->bias.zero_();
}

torch::Tensor SrNetImpl::forward(const torch::Tensor& x) {
  return bicubic(x, config.scale) + F::pixel_shuffle(body->forward(x), config.scale);
}

torch::Tensor frames_to_unit(const torch::Tensor& frames) {
  return frames.permute({0, 3, 1, 2}).to(torch::kFloat).div(255.0);
}

torch::Tensor unit_to_frames(const torch::Tensor& x) {
  return x.mul(255.0).round().clamp(0, 255).to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous();
}

torch::Tensor downscale_unit(const torch::Tensor& frames, int scale) {
  return F::avg_pool2d(frames_to_unit(frames), F::AvgPool2dFuncOptions(scale));
}

SrTrainResult train_sr(SrNet& net, const torch::Tensor& frames, int64_t heldout, const SrTrainOptions& o) {
  const int s = net->config.scale;
  if (frames.dim() != 4 || frames.size(3) != 3 || frames.scalar_type() != torch::kUInt8)
    fail("sr training", "expected uint8 frames [N, H, W, 3], got " + c10::str(frames.sizes()));
  const int64_t N = frames.size(0), H = frames.size(1), W = frames.size(2);
  if (H % s || W % s) fail("sr training", "frame size must be a multiple of the scale " + std::to_string(s));
  if (H / s < o.crop || W / s < o.crop)
    fail("sr training", "frames of " + std::to_string(H) + "x" + std::to_string(W) + " are smaller than a crop of " +
                            std::to_string(o.crop * s));
  if (heldout < 1 || heldout >= N) fail("sr training", "need at least 2 frames (training and held out)");
  const auto device = net->parameters()[0].device();
  const int64_t train_n = N - heldout;
  auto hr_all = frames_to_unit(frames);                       // [N, 3, H, W] on the CPU
  auto lr_all = F::avg_pool2d(hr_all, F::AvgPool2dFuncOptions(s));  // [N, 3, H/s, W/s]

  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(o.lr));
  std::mt19937_64 rng(o.seed);
  const int c = o.crop;
  net->train();
  for (int step = 1; step <= o.steps; ++step) {
    std::vector<torch::Tensor> lo, hi;
    for (int b = 0; b < o.batch; ++b) {
      const int64_t i = static_cast<int64_t>(rng() % static_cast<uint64_t>(train_n));
      const int64_t y = static_cast<int64_t>(rng() % static_cast<uint64_t>(H / s - c + 1));
      const int64_t x = static_cast<int64_t>(rng() % static_cast<uint64_t>(W / s - c + 1));
      lo.push_back(lr_all[i].narrow(1, y, c).narrow(2, x, c));
      hi.push_back(hr_all[i].narrow(1, y * s, c * s).narrow(2, x * s, c * s));
    }
    auto pred = net->forward(torch::stack(lo).to(device));
    auto loss = (pred - torch::stack(hi).to(device)).abs().mean();
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (o.on_step) o.on_step(step, loss.item<double>());
  }
  net->eval();
  torch::NoGradGuard ng;
  SrTrainResult r;
  r.train_frames = train_n;
  r.heldout_frames = heldout;
  auto lr = lr_all.narrow(0, train_n, heldout).to(device), hr = hr_all.narrow(0, train_n, heldout).to(device);
  r.psnr_sr = psnr_unit(net->forward(lr), hr);
  r.psnr_bicubic = psnr_unit(bicubic(lr, s), hr);
  return r;
}

void save_sr(const std::string& dir, const SrNet& net, const json& provenance) {
  std::map<std::string, std::string> meta;
  if (!provenance.is_null()) meta["made_by"] = provenance.dump();
  store::save_model_folder(dir, *net, kFormat, net->config.to_json(), meta);
}

SrNet load_sr(const std::string& dir_in, c10::Device device) {
  const std::string dir = store::model_folder(dir_in, kFormat, "a super-resolution model");
  const std::string cfg = (fs::path(dir) / "config.json").string();
  SrNet net(SrConfig::from_json(read_json_file(cfg), cfg));
  store::load_model_folder(dir, *net, device);
  return net;
}

Upscaler load_upscaler(const std::string& path, c10::Device device, int* scale) {
  if (fs::is_directory(path)) {
    auto net = load_sr(path, device);
    if (scale) *scale = net->config.scale;
    return [net, device](const at::Tensor& frames) mutable {
      c10::InferenceMode guard;
      return unit_to_frames(net->forward(frames_to_unit(frames).to(device)).to(torch::kCPU));
    };
  }
  auto module = std::make_shared<torch::jit::script::Module>(
      load_torchscript(path, device, "a folder from `loong sr train` or a TorchScript upscaler"));
  // Find the factor (and check the contract) on a small input.
  int factor = 0;
  try {
    c10::InferenceMode guard;
    auto probe = module->forward({torch::rand({1, 3, 8, 8}).to(device)}).toTensor();
    if (probe.dim() != 4 || probe.size(0) != 1 || probe.size(1) != 3 || probe.size(2) != probe.size(3) ||
        probe.size(2) % 8 != 0 || probe.size(2) < 8)
      fail(path, "expected forward to map [B, 3, H, W] to [B, 3, sH, sW], got " + c10::str(probe.sizes()) +
                     " for [1, 3, 8, 8]");
    factor = static_cast<int>(probe.size(2) / 8);
  } catch (const c10::Error& e) {
    fail(path, "running the TorchScript model on [1, 3, 8, 8] failed: " + first_error_line(e));
  }
  if (scale) *scale = factor;
  return [module, device](const at::Tensor& frames) {
    c10::InferenceMode guard;
    auto y = module->forward({frames_to_unit(frames).to(device)}).toTensor();
    return unit_to_frames(y.to(torch::kCPU, torch::kFloat));
  };
}

torch::Tensor sr_training_frames(const std::string& manifest_path, int hr, double fps, int64_t max_frames) {
  const auto manifest = data::load_manifest(manifest_path);
  std::vector<at::Tensor> frames;
  int64_t count = 0;
  for (const auto& e : manifest.entries) {
    if (count >= max_frames) break;
    video::ReadOptions r;
    r.size = hr;
    r.fps = fps;
    r.start = e.start;
    r.end = e.end;
    at::Tensor f = e.kind == data::MediaKind::Image ? video::read_image(e.path, hr).unsqueeze(0)
                                                    : video::read(e.path, r).frames;
    f = f.narrow(0, 0, std::min<int64_t>(f.size(0), max_frames - count));
    count += f.size(0);
    frames.push_back(f);
  }
  if (count < 10) fail(manifest_path, "gave " + std::to_string(count) + " frames; at least 10 are needed");
  return torch::cat(frames);
}

}  // namespace loong::gen
