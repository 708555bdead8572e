#include "loong/eval/metrics.h"

#include <cmath>
#include <numeric>

#include <torch/torch.h>

#include "loong/core/error.h"

namespace loong::eval {

namespace {
void check_pair(const at::Tensor& a, const at::Tensor& b) {
  if (a.dim() != 4 || a.size(3) != 3 || a.sizes() != b.sizes())
    fail("metrics", "expected two uint8 clips [T, H, W, 3] of the same shape, got " + c10::str(a.sizes()) + " and " +
                        c10::str(b.sizes()));
}
}  // namespace

std::vector<double> psnr_per_frame(const at::Tensor& a, const at::Tensor& b) {
  check_pair(a, b);
  auto mse = (a.to(torch::kDouble) - b.to(torch::kDouble)).pow(2).mean({1, 2, 3}).cpu();
  std::vector<double> out;
  for (int64_t t = 0; t < mse.size(0); ++t) {
    const double m = mse[t].item<double>();
    out.push_back(m <= 1e-10 ? 100.0 : 10 * std::log10(255.0 * 255.0 / m));
  }
  return out;
}

std::vector<double> ssim_per_frame(const at::Tensor& a, const at::Tensor& b) {
  check_pair(a, b);
  const int64_t win = 11;
  if (a.size(1) < win || a.size(2) < win) fail("metrics", "SSIM needs frames of at least 11x11 pixels");
  auto g = torch::arange(win, torch::kDouble) - (win - 1) / 2.0;
  g = torch::exp(-g.pow(2) / (2 * 1.5 * 1.5));
  g = g / g.sum();
  auto w = torch::outer(g, g).view({1, 1, win, win}).repeat({3, 1, 1, 1}).to(a.device());
  auto x = a.to(torch::kDouble).permute({0, 3, 1, 2});  // [T, 3, H, W]
  auto y = b.to(torch::kDouble).permute({0, 3, 1, 2});
  auto blur = [&](const torch::Tensor& v) { return torch::nn::functional::conv2d(v, w, torch::nn::functional::Conv2dFuncOptions().groups(3)); };
  const double c1 = std::pow(0.01 * 255, 2), c2 = std::pow(0.03 * 255, 2);
  auto mx = blur(x), my = blur(y);
  auto sxx = blur(x * x) - mx * mx, syy = blur(y * y) - my * my, sxy = blur(x * y) - mx * my;
  auto map = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2));
  auto per = map.mean({1, 2, 3}).cpu();
  std::vector<double> out;
  for (int64_t t = 0; t < per.size(0); ++t) out.push_back(per[t].item<double>());
  return out;
}

double mean(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

namespace {
// [T - 1]: mean |frame t - frame t-1| (float64), or undefined for T < 2.
at::Tensor frame_changes(const at::Tensor& frames, const char* what) {
  if (frames.dim() != 4) fail(what, "expected frames [T, H, W, C], got " + c10::str(frames.sizes()));
  const int64_t T = frames.size(0);
  if (T < 2) return {};
  auto f = frames.to(torch::kFloat);
  return (f.narrow(0, 1, T - 1) - f.narrow(0, 0, T - 1)).abs().flatten(1).mean(1).to(torch::kDouble);
}
}  // namespace

double mean_frame_change(const at::Tensor& frames) {
  auto change = frame_changes(frames, "frame change");
  if (!change.defined()) return std::nan("");
  const double scale = frames.scalar_type() == torch::kUInt8 ? 255.0 : 1.0;
  return change.mean().item<double>() / scale;
}

double boundary_jump(const at::Tensor& frames, const std::vector<int64_t>& boundaries) {
  auto change = frame_changes(frames, "boundary jump");
  if (!change.defined()) return std::nan("");
  const int64_t T = frames.size(0);
  auto at_boundary = torch::zeros({T - 1}, torch::kBool);
  for (int64_t b : boundaries)
    if (b >= 1 && b < T) at_boundary[b - 1] = true;
  const int64_t nb = at_boundary.sum().item<int64_t>(), no = (T - 1) - nb;
  if (nb == 0 || no == 0) return std::nan("");
  const double jump = change.masked_select(at_boundary).mean().item<double>();
  const double rest = change.masked_select(at_boundary.logical_not()).mean().item<double>();
  return rest > 0 ? jump / rest : (jump > 0 ? INFINITY : 1.0);
}

}  // namespace loong::eval
