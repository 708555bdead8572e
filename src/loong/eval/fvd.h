// Fréchet Video Distance with the StyleGAN-V protocol (SPEC.md §6): features
// of an I3D network (a TorchScript file the user gives, e.g. StyleGAN-V's
// i3d_torchscript.pt) on 16-frame uint8 clips, a Gaussian fitted to each set,
// and the Fréchet distance between the two Gaussians.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

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

}  // namespace loong::eval
