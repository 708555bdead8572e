// Fréchet Video Distance with the StyleGAN-V protocol (docs/method.md §6): features
// of an I3D network (a TorchScript file the user gives, e.g. StyleGAN-V's
// i3d_torchscript.pt) on 16-frame uint8 clips, a Gaussian fitted to each set,
// and the Fréchet distance between the two Gaussians.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

namespace loong::eval {

// Running mean and covariance of feature vectors (float64).
class FeatureStats {
 public:
  void add(const at::Tensor& features);  // [N, D]
  int64_t count() const { return n_; }
  at::Tensor mean() const;                // [D]
  at::Tensor covariance() const;          // [D, D], unbiased (N - 1), as numpy.cov

 private:
  at::Tensor sum_, outer_;
  int64_t n_ = 0;
};

// ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2). The trace of the square root
// is computed from the symmetric matrix S1^1/2 S2 S1^1/2 (same eigenvalues as
// S1 S2, but symmetric, so an eigendecomposition is exact and stable; small
// negative eigenvalues from rounding are clamped to 0).
double frechet_distance(const at::Tensor& mu1, const at::Tensor& sigma1, const at::Tensor& mu2,
                        const at::Tensor& sigma2);

// A video feature network from a TorchScript file. StyleGAN-V's I3D takes
// forward(x, rescale, resize, return_features) with x uint8 [B, 3, T, H, W]
// and is called with all three flags true (it scales to [-1, 1] and resizes to
// 224 x 224 itself). A network whose forward takes x alone gets x resized to
// 224 x 224 (bilinear), still uint8.
class VideoFeatureNet {
 public:
  VideoFeatureNet(const std::string& path, c10::Device device);
  ~VideoFeatureNet();
  VideoFeatureNet(VideoFeatureNet&&) noexcept;
  // uint8 clips [B, T, H, W, 3] -> float64 features [B, D] on the CPU.
  at::Tensor features(const at::Tensor& clips);
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

// A video of a set: a file, with the time range a manifest gives it.
struct VideoRef {
  std::string path;
  double start = 0, end = -1;
};

// A folder (every video file in it, sorted) or a manifest (its video
// entries). Errors name `flag`: no such source, or no videos in it.
std::vector<VideoRef> list_videos(const std::string& source, const std::string& flag);

struct FvdOptions {
  std::string real, fake, detector;  // folders or manifests; the I3D TorchScript file
  int frames = 16;                   // consecutive frames per video, from its start
  double fps = 0;                    // read at this rate; 0 = the videos' own
  int64_t max_videos = 0;            // per set; 0 = all
  int batch = 8;                     // clips per detector call
  std::string device = "cpu";        // cpu or cuda[:N]
};

// `loong eval fvd`: the distance and what each set held (videos used, too
// short). Videos shorter than `frames` are left out, as StyleGAN-V does;
// each set needs at least 2.
nlohmann::json fvd_report(const FvdOptions& o);

}  // namespace loong::eval
