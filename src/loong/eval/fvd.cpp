#include "loong/eval/fvd.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include <torch/script.h>
#include <torch/torch.h>

#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/core/runtime.h"
#include "loong/data/manifest.h"
#include "loong/io/video.h"
#include "loong/core/torchscript.h"

namespace fs = std::filesystem;

namespace loong::eval {

void FeatureStats::add(const at::Tensor& features) {
  if (features.dim() != 2) fail("features", "expected [N, D], got " + c10::str(features.sizes()));
  auto f = features.to(torch::kCPU, torch::kDouble);
  if (!sum_.defined()) {
    sum_ = torch::zeros({f.size(1)}, torch::kDouble);
    outer_ = torch::zeros({f.size(1), f.size(1)}, torch::kDouble);
  } else if (f.size(1) != sum_.size(0)) {
    fail("features", "width " + std::to_string(f.size(1)) + " after " + std::to_string(sum_.size(0)));
  }
  sum_ += f.sum(0);
  outer_ += f.t().matmul(f);
  n_ += f.size(0);
}

at::Tensor FeatureStats::mean() const {
  if (n_ < 1) fail("features", "no feature vectors");
  return sum_ / static_cast<double>(n_);
}

at::Tensor FeatureStats::covariance() const {
  if (n_ < 2) fail("features", "a covariance needs at least 2 feature vectors, got " + std::to_string(n_));
  auto mu = mean();
  return (outer_ - static_cast<double>(n_) * torch::outer(mu, mu)) / static_cast<double>(n_ - 1);
}

double frechet_distance(const at::Tensor& mu1_in, const at::Tensor& s1_in, const at::Tensor& mu2_in,
                        const at::Tensor& s2_in) {
  auto mu1 = mu1_in.to(torch::kCPU, torch::kDouble), mu2 = mu2_in.to(torch::kCPU, torch::kDouble);
  auto s1 = s1_in.to(torch::kCPU, torch::kDouble), s2 = s2_in.to(torch::kCPU, torch::kDouble);
  const auto D = mu1.size(0);
  if (mu2.size(0) != D || s1.sizes() != at::IntArrayRef({D, D}) || s2.sizes() != at::IntArrayRef({D, D}))
    fail("frechet distance", "mismatched shapes");
  // S1^1/2 from the eigendecomposition of the symmetric S1 (symmetrised
  // against rounding), then the eigenvalues of the symmetric S1^1/2 S2 S1^1/2.
  auto sym = [](const torch::Tensor& a) { return (a + a.t()) / 2; };
  auto [e1, v1] = at::linalg_eigh(sym(s1), "L");
  auto root1 = v1.matmul(torch::diag(e1.clamp_min(0).sqrt())).matmul(v1.t());
  auto m = sym(root1.matmul(s2).matmul(root1));
  auto em = at::linalg_eigvalsh(m, "L");
  const double tr_sqrt = em.clamp_min(0).sqrt().sum().item<double>();
  const double diff = (mu1 - mu2).pow(2).sum().item<double>();
  return diff + s1.trace().item<double>() + s2.trace().item<double>() - 2 * tr_sqrt;
}

struct VideoFeatureNet::Impl {
  torch::jit::script::Module module;
  c10::Device device{c10::kCPU};
  bool stylegan_flags = false;  // forward(x, rescale, resize, return_features)
};

VideoFeatureNet::VideoFeatureNet(const std::string& path, c10::Device device)
    : impl_(std::make_unique<Impl>()), path_(path) {
  impl_->module = load_torchscript(path, device, "an I3D TorchScript detector, e.g. i3d_torchscript.pt");
  impl_->device = device;
  const auto& args = impl_->module.get_method("forward").function().getSchema().arguments();
  // arguments include self
  if (args.size() == 5) impl_->stylegan_flags = true;
  else if (args.size() != 2)
    fail(path, "expected forward(x) or forward(x, rescale, resize, return_features), got " +
                   std::to_string(args.size() - 1) + " arguments");
}

VideoFeatureNet::~VideoFeatureNet() = default;
VideoFeatureNet::VideoFeatureNet(VideoFeatureNet&&) noexcept = default;

at::Tensor VideoFeatureNet::features(const at::Tensor& clips) {
  if (clips.dim() != 5 || clips.size(4) != 3 || clips.scalar_type() != torch::kUInt8)
    fail(path_, "expected uint8 clips [B, T, H, W, 3], got " + c10::str(clips.sizes()));
  c10::InferenceMode guard;
  auto x = clips.permute({0, 4, 1, 2, 3}).contiguous().to(impl_->device);  // [B, 3, T, H, W]
  torch::jit::IValue out;
  try {
    if (impl_->stylegan_flags) {
      out = impl_->module.forward({x, true, true, true});
    } else {
      const auto B = x.size(0), T = x.size(2);
      namespace F = torch::nn::functional;
      auto frames = x.transpose(1, 2).reshape({B * T, 3, x.size(3), x.size(4)}).to(torch::kFloat);
      frames = F::interpolate(frames, F::InterpolateFuncOptions()
                                          .size(std::vector<int64_t>{224, 224})
                                          .mode(torch::kBilinear)
                                          .align_corners(false));
      auto r = frames.round().clamp(0, 255).to(torch::kUInt8).view({B, T, 3, 224, 224}).transpose(1, 2).contiguous();
      out = impl_->module.forward({r});
    }
  } catch (const c10::Error& e) {
    fail(path_, "running the detector failed: " + first_error_line(e));
  }
  if (!out.isTensor()) fail(path_, "the detector must return a tensor of features [B, D]");
  auto f = out.toTensor();
  if (f.dim() != 2 || f.size(0) != clips.size(0))
    fail(path_, "the detector must return features [B, D], got " + c10::str(f.sizes()));
  return f.to(torch::kCPU, torch::kDouble);
}

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
    fail_input(flag, "no such folder or manifest: " + src);
  }
  if (out.empty()) fail_input(flag, src + " holds no videos");
  return out;
}

namespace {

struct SetResult {
  FeatureStats stats;
  int64_t videos = 0, short_videos = 0;
};

SetResult set_features(VideoFeatureNet& net, const std::vector<VideoRef>& videos, int frames, double fps,
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

}  // namespace

json fvd_report(const FvdOptions& o) {
  const auto real = list_videos(o.real, "--real"), fake = list_videos(o.fake, "--fake");
  VideoFeatureNet net(o.detector, parse_device(o.device));
  auto r = set_features(net, real, o.frames, o.fps, o.max_videos, o.batch);
  auto f = set_features(net, fake, o.frames, o.fps, o.max_videos, o.batch);
  for (const auto* s : {&r, &f})
    if (s->videos < 2)
      fail_input(s == &r ? "--real" : "--fake", "needs at least 2 videos of " + std::to_string(o.frames) + " frames, got " +
                                              std::to_string(s->videos) + " (" + std::to_string(s->short_videos) +
                                              " too short)");
  const double d = frechet_distance(r.stats.mean(), r.stats.covariance(), f.stats.mean(), f.stats.covariance());
  return {{"fvd", d},
          {"frames", o.frames},
          {"detector", o.detector},
          {"real", {{"source", o.real}, {"videos", r.videos}, {"too_short", r.short_videos}}},
          {"fake", {{"source", o.fake}, {"videos", f.videos}, {"too_short", f.short_videos}}}};
}

}  // namespace loong::eval
