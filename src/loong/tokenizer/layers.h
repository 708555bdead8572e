// Building blocks of the causal 3D CNN. Every tensor is [B, C, T, H, W].
// Causality: time is padded on the past side only and normalisation is per
// frame, so output frame t depends on input frames <= t (times the stride).
#pragma once
#include <array>
#include <string>

#include <torch/nn.h>

namespace loong::tokenizer {

using K3 = std::array<int64_t, 3>;  // (time, height, width)

// Conv3d with kernel_t - 1 zero frames of past padding and "same" spatial padding.
struct CausalConv3dImpl : torch::nn::Module {
  CausalConv3dImpl(int in, int out, std::array<int64_t, 3> kernel, std::array<int64_t, 3> stride = {1, 1, 1});
  torch::Tensor forward(const torch::Tensor& x);  // [B, in, T, H, W] -> [B, out, T', H', W']
  torch::nn::Conv3d conv{nullptr};
  std::array<int64_t, 3> kernel, stride;
};
TORCH_MODULE(CausalConv3d);

// Normalisation that never mixes frames (so the network stays causal):
//   Group: GroupNorm over (C/G, H, W) of each frame (MAGVIT-2's norm, per
//          frame), with a learned per-channel scale and shift;
//   None:  identity. The tiny preset uses it: per-frame GroupNorm takes each
//          frame's mean out, which is most of what a flat background says,
//          and the small network learned ~3 dB slower with it
//          (docs/benchmarks.md).
enum class NormKind { Group, None };
NormKind parse_norm(const std::string& name);  // "group" -> Group, else None (TokenizerConfig::validate checks the name)

struct FrameNormImpl : torch::nn::Module {
  FrameNormImpl(int channels, NormKind kind);
  torch::Tensor forward(const torch::Tensor& x);
  NormKind kind;
  int groups = 1;
  torch::Tensor weight, bias;
};
TORCH_MODULE(FrameNorm);

// norm -> SiLU -> causal conv, twice, plus a (1x1x1 when widths differ) shortcut.
struct ResBlock3dImpl : torch::nn::Module {
  ResBlock3dImpl(int in, int out, NormKind norm);
  torch::Tensor forward(const torch::Tensor& x);
  FrameNorm norm1{nullptr}, norm2{nullptr};
  CausalConv3d conv1{nullptr}, conv2{nullptr};
  torch::nn::Conv3d shortcut{nullptr};
  // In training, recompute the block's activations in backward instead of
  // keeping them (ops/checkpoint.h).
  bool checkpoint = false;

 private:
  torch::Tensor body(const torch::Tensor& x);
};
TORCH_MODULE(ResBlock3d);

// Strided causal conv: x2 down in space, and in time when `temporal`
// (1 + 2m frames -> 1 + m: the first frame stays on its own).
struct Downsample3dImpl : torch::nn::Module {
  Downsample3dImpl(int channels, bool temporal);
  torch::Tensor forward(const torch::Tensor& x);
  CausalConv3d conv{nullptr};
};
TORCH_MODULE(Downsample3d);

// Causal conv to C * 4 channels, then depth-to-space: x2 in space; when
// `temporal`, each frame is repeated and the first copy dropped (1 + m frames
// -> 1 + 2m, mirroring the encoder).
struct Upsample3dImpl : torch::nn::Module {
  Upsample3dImpl(int channels, bool temporal);
  torch::Tensor forward(const torch::Tensor& x);
  CausalConv3d conv{nullptr};
  int64_t st;
};
TORCH_MODULE(Upsample3d);

// FrameNorm -> SiLU, as a module (for Sequential).
struct NormActImpl : torch::nn::Module {
  NormActImpl(int channels, NormKind norm);
  torch::Tensor forward(const torch::Tensor& x);
  FrameNorm norm{nullptr};
};
TORCH_MODULE(NormAct);

}  // namespace loong::tokenizer
