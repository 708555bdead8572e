// Shared helpers for the test suite: temporary folders, test patterns, PSNR,
// and error-text expectations.
#pragma once
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loong/core/error.h"

namespace loong::test {

// A fresh folder per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info ? info->test_suite_name() : "t") + "_" + (info ? info->name() : "x");
    for (auto& c : name) if (c == '/') c = '_';
    path_ = std::filesystem::temp_directory_path() / ("loong_test_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A natural-looking clip, uint8 [T, H, W, 3]: smooth colour gradients, soft
// moving blobs and low-amplitude texture, like camera footage rather than noise.
inline torch::Tensor natural_clip(int64_t T, int64_t H, int64_t W, uint64_t seed = 0) {
  torch::manual_seed(seed);
  auto y = torch::linspace(0, 1, H).view({H, 1});
  auto x = torch::linspace(0, 1, W).view({1, W});
  auto texture = torch::nn::functional::interpolate(
                     torch::rand({1, 3, H / 8 + 2, W / 8 + 2}),
                     torch::nn::functional::InterpolateFuncOptions()
                         .size(std::vector<int64_t>{H, W}).mode(torch::kBilinear).align_corners(false))
                     .squeeze(0);
  std::vector<torch::Tensor> frames;
  for (int64_t t = 0; t < T; ++t) {
    double p = static_cast<double>(t) / std::max<int64_t>(T, 1);
    auto r = 0.5 + 0.35 * torch::sin(6.0 * x + 2.0 * y + 3.0 * p);
    auto g = 0.5 + 0.30 * torch::cos(4.0 * y - 3.0 * x + 2.0 * p);
    auto b = 0.4 + 0.25 * torch::sin(5.0 * (x + y) - p);
    auto img = torch::stack({r.expand({H, W}), g.expand({H, W}), b.expand({H, W})});
    for (int k = 0; k < 3; ++k) {
      double cx = 0.2 + 0.6 * std::fmod(0.3 * k + p * (0.5 + 0.2 * k), 1.0), cy = 0.3 + 0.15 * k;
      auto blob = torch::exp(-((x - cx).pow(2) + (y - cy).pow(2)) / 0.01);
      img[k] = img[k] + 0.35 * blob;
    }
    img = img + 0.12 * (texture - 0.5);
    frames.push_back((img.clamp(0, 1) * 255).round().to(torch::kUInt8).permute({1, 2, 0}));
  }
  return torch::stack(frames).contiguous();
}

// Frame i is a flat grey of level `level(i)`: the decoded level tells which
// source frame a resampled output shows.
inline torch::Tensor indexed_clip(int64_t T, int64_t H, int64_t W, int step = 4) {
  auto v = torch::empty({T, H, W, 3}, torch::kUInt8);
  for (int64_t i = 0; i < T; ++i) v[i].fill_(static_cast<int>(10 + step * i));
  return v;
}
inline int64_t index_of_level(const torch::Tensor& frame, int step = 4) {
  double m = frame.to(torch::kFloat).mean().item<double>();
  return std::lround((m - 10) / step);
}

inline double psnr(const torch::Tensor& a, const torch::Tensor& b) {
  double mse = (a.to(torch::kDouble) - b.to(torch::kDouble)).pow(2).mean().item<double>();
  return mse == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 / mse);
}

// Runs fn, expects a loong::Error whose text contains every piece.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& pieces) {
  try {
    fn();
    ADD_FAILURE() << "expected loong::Error containing '" << (pieces.empty() ? "" : pieces[0]) << "'";
  } catch (const loong::Error& e) {
    for (const auto& p : pieces)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << "message: " << e.what() << "\nmissing: " << p;
  }
}

}  // namespace loong::test
