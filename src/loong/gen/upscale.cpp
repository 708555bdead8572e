#include "loong/gen/upscale.h"

#include <cmath>

#include <torch/torch.h>

#include "loong/core/error.h"

namespace loong::gen {

namespace {
double sinc(double x) {
  if (std::abs(x) < 1e-12) return 1.0;
  const double px = M_PI * x;
  return std::sin(px) / px;
}
}  // namespace

// Written here rather than through swscale so that upscaling runs on the
// frames' device and in builds without FFmpeg.
at::Tensor lanczos_matrix(int64_t in, int64_t out) {
  constexpr int a = 3;
  auto m = torch::zeros({out, in}, torch::kDouble);
  auto acc = m.accessor<double, 2>();
  const double scale = static_cast<double>(out) / in;
  const double support = scale < 1 ? a / scale : a;  // widen the kernel when shrinking
  const double stretch = scale < 1 ? scale : 1.0;
  for (int64_t i = 0; i < out; ++i) {
    const double centre = (i + 0.5) / scale - 0.5;
    double sum = 0;
    for (int64_t j = static_cast<int64_t>(std::floor(centre - support)); j <= static_cast<int64_t>(std::ceil(centre + support)); ++j) {
      const double d = (centre - j) * stretch;
      if (std::abs(d) >= a) continue;
      const double w = sinc(d) * sinc(d / a);
      acc[i][std::clamp<int64_t>(j, 0, in - 1)] += w;
      sum += w;
    }
    for (int64_t j = 0; j < in; ++j) acc[i][j] /= sum;
  }
  return m.to(torch::kFloat);
}

Upscaler resampling_upscaler(int factor, const std::string& method) {
  if (factor < 1 || factor > 16) fail("--upscale", "must be 1 to 16, got " + std::to_string(factor));
  if (method != "bicubic" && method != "lanczos")
    fail("--upscale-method", "expected bicubic or lanczos, got " + squote(method));
  return [factor, method](const at::Tensor& frames) -> at::Tensor {
    if (factor == 1) return frames;
    const int64_t H = frames.size(1), W = frames.size(2);
    auto x = frames.to(torch::kFloat);
    torch::Tensor y;
    if (method == "bicubic") {
      namespace F = torch::nn::functional;
      y = F::interpolate(x.permute({0, 3, 1, 2}),
                         F::InterpolateFuncOptions()
                             .size(std::vector<int64_t>{H * factor, W * factor})
                             .mode(torch::kBicubic)
                             .align_corners(false))
              .permute({0, 2, 3, 1});
    } else {
      auto mh = lanczos_matrix(H, H * factor).to(x.device()), mw = lanczos_matrix(W, W * factor).to(x.device());
      // [T, H, W, C] -> rows, then columns
      y = torch::einsum("oh,thwc->towc", {mh, x});
      y = torch::einsum("pw,towc->topc", {mw, y});
    }
    return y.round().clamp(0, 255).to(torch::kUInt8).contiguous();
  };
}

}  // namespace loong::gen
