// Evaluation metrics: the Fréchet distance against values computed by hand and
// by an independent method, feature statistics, and the detector pipeline with
// small TorchScript networks built here.
#include <cmath>

#include <torch/script.h>

#include "loong/eval/fvd.h"
#include "detector_util.h"
#include "test_util.h"

using namespace loong::eval;
using loong::test::expect_error;
using loong::test::TempDir;

namespace {

torch::Tensor random_spd(int64_t d, uint64_t seed) {
  torch::manual_seed(seed);
  auto a = torch::randn({d, d}, torch::kDouble);
  return a.matmul(a.t()) + 0.1 * torch::eye(d, torch::kDouble);
}

// Tr((S1 S2)^1/2) from the eigenvalues of the non-symmetric product: a
// different route from the symmetric one the library takes.
double trace_sqrt_product(const torch::Tensor& s1, const torch::Tensor& s2) {
  auto ev = torch::linalg::eigvals(s1.matmul(s2));
  return torch::real(ev).clamp_min(0).sqrt().sum().item<double>();
}

}  // namespace

TEST(Eval, FrechetDistanceArithmetic) {
  auto d = torch::kDouble;
  // Identical Gaussians: 0.
  auto s = random_spd(5, 1);
  auto mu = torch::randn({5}, d);
  EXPECT_NEAR(frechet_distance(mu, s, mu, s), 0, 1e-8);
  // 1-D: (mu1 - mu2)^2 + (sd1 - sd2)^2.
  EXPECT_NEAR(frechet_distance(torch::tensor({1.0}, d), torch::tensor({{4.0}}, d), torch::tensor({3.0}, d),
                               torch::tensor({{9.0}}, d)),
              4 + 1, 1e-10);
  // By hand: S1 = [[2, 1], [1, 2]] (eigenvalues 3 and 1), S2 = I, means 1 apart in each dimension:
  // 2 + tr(S1) + tr(S2) - 2 (sqrt 3 + 1) = 6 - 2 sqrt 3.
  auto s1 = torch::tensor({{2.0, 1.0}, {1.0, 2.0}}, d);
  EXPECT_NEAR(frechet_distance(torch::zeros({2}, d), s1, torch::ones({2}, d), torch::eye(2, d)), 6 - 2 * std::sqrt(3.0),
              1e-10);
  // Random full covariances against the eigenvalues of S1 S2.
  for (uint64_t seed : {2, 3, 4}) {
    auto a = random_spd(8, seed), b = random_spd(8, seed + 10);
    auto m1 = torch::randn({8}, d), m2 = torch::randn({8}, d);
    const double expected = (m1 - m2).pow(2).sum().item<double>() + a.trace().item<double>() + b.trace().item<double>() -
                            2 * trace_sqrt_product(a, b);
    EXPECT_NEAR(frechet_distance(m1, a, m2, b), expected, 1e-7 * std::abs(expected));
    EXPECT_NEAR(frechet_distance(m1, a, m2, b), frechet_distance(m2, b, m1, a), 1e-7 * std::abs(expected));
  }
  // Rank-deficient covariances (fewer samples than dimensions) stay finite and >= 0.
  auto x = torch::randn({3, 10}, d), y = torch::randn({3, 10}, d) + 1;
  FeatureStats fx, fy;
  fx.add(x);
  fy.add(y);
  const double fd = frechet_distance(fx.mean(), fx.covariance(), fy.mean(), fy.covariance());
  EXPECT_TRUE(std::isfinite(fd));
  EXPECT_GT(fd, 0);
}

TEST(Eval, FeatureStatsMatchDirectMoments) {
  torch::manual_seed(5);
  auto f = torch::randn({37, 6}, torch::kDouble) * 3 + 2;
  FeatureStats s;
  s.add(f.narrow(0, 0, 10));
  s.add(f.narrow(0, 10, 27));
  EXPECT_EQ(s.count(), 37);
  auto mu = f.mean(0);
  auto c = (f - mu).t().matmul(f - mu) / 36.0;
  EXPECT_TRUE(torch::allclose(s.mean(), mu, 1e-10, 1e-10));
  EXPECT_TRUE(torch::allclose(s.covariance(), c, 1e-9, 1e-9));
  FeatureStats one;
  one.add(f.narrow(0, 0, 1));
  expect_error([&] { one.covariance(); }, {"at least 2"});
  expect_error([&] { s.add(torch::zeros({2, 5})); }, {"width 5"});
}

TEST(Eval, TorchScriptDetectors) {
  TempDir dir;
  {
    // StyleGAN-V's signature: forward(x, rescale, resize, return_features).
    loong::test::write_stats_detector(dir / "stats.pt");
    // forward(x) alone: gets 224 x 224 frames.
    torch::jit::Module p("Plain");
    p.define(R"(
def forward(self, x):
    return torch.cat([x.float().mean(dim=[2, 3, 4]), torch.full([x.size(0), 1], float(x.size(3)))], 1)
)");
    p.save(dir / "plain.pt");
    torch::jit::Module bad("Bad");
    bad.define(R"(
def forward(self, x, y):
    return x
)");
    bad.save(dir / "bad.pt");
  }
  auto clips = torch::stack({loong::test::natural_clip(4, 16, 16, 1), loong::test::natural_clip(4, 16, 16, 2)});
  VideoFeatureNet stats(dir / "stats.pt", torch::kCPU);
  auto f = stats.features(clips);
  auto x = clips.permute({0, 4, 1, 2, 3}).to(torch::kFloat);
  auto expected = torch::cat({x.mean({2, 3, 4}), x.std({2, 3, 4})}, 1).to(torch::kDouble);
  EXPECT_TRUE(torch::allclose(f, expected, 1e-4, 1e-4));

  VideoFeatureNet plain(dir / "plain.pt", torch::kCPU);
  auto g = plain.features(clips);
  EXPECT_EQ(g.size(1), 4);
  EXPECT_EQ(g[0][3].item<double>(), 224);
  // Bilinear resizing keeps the mean of a smooth image close.
  EXPECT_TRUE(torch::allclose(g.narrow(1, 0, 3), x.mean({2, 3, 4}).to(torch::kDouble), 0, 2.0));

  expect_error([&] { VideoFeatureNet(dir / "bad.pt", torch::kCPU); }, {"bad.pt", "forward(x)"});
  expect_error([&] { VideoFeatureNet(dir / "none.pt", torch::kCPU); }, {"none.pt", "no such detector"});
  loong::test::write_bytes(dir / "junk.pt", "junk");
  expect_error([&] { VideoFeatureNet(dir / "junk.pt", torch::kCPU); }, {"junk.pt", "not a TorchScript model"});
  expect_error([&] { stats.features(torch::zeros({2, 4, 16, 16, 3})); }, {"uint8 clips"});
}
