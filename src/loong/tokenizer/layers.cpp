#include "loong/tokenizer/layers.h"

#include <cmath>

#include <torch/torch.h>

#include "loong/ops/checkpoint.h"

namespace F = torch::nn::functional;

namespace loong::tokenizer {

CausalConv3dImpl::CausalConv3dImpl(int in, int out, std::array<int64_t, 3> k, std::array<int64_t, 3> s)
    : kernel(k), stride(s) {
  conv = register_module("conv", torch::nn::Conv3d(torch::nn::Conv3dOptions(in, out, {k[0], k[1], k[2]})
                                                       .stride({s[0], s[1], s[2]})
                                                       .padding(0)));
  // Initialise as a 2D convolution on the newest frame only ("inflation", as
  // in MAGVIT-2), with variance-preserving weights: the default init shrinks
  // the signal ~3x per layer (more for single images, which only reach the
  // last temporal tap), so after a dozen convolutions the decoder would start
  // out ignoring its input. The older taps learn from zero.
  torch::NoGradGuard ng;
  conv->weight.zero_();
  conv->weight.select(2, k[0] - 1).normal_(0, 1.0 / std::sqrt(static_cast<double>(in * k[1] * k[2])));
  conv->bias.zero_();
}

torch::Tensor CausalConv3dImpl::forward(const torch::Tensor& x) {
  // x: [B, C, T, H, W]. Pad order is (W left, W right, H top, H bottom, T past, T future).
  const int64_t ph = kernel[1] / 2, pw = kernel[2] / 2;
  if (x.size(2) == 1) {
    // A single frame only meets the newest temporal tap (the others see the
    // zero padding), so a 2D convolution with that tap gives the same output
    // and gradients about 3x faster than conv3d (image stage, first frames).
    auto y = torch::conv2d(x.squeeze(2), conv->weight.select(2, kernel[0] - 1), conv->bias, {stride[1], stride[2]},
                           {ph, pw});
    return y.unsqueeze(2);
  }
  return conv(F::pad(x, F::PadFuncOptions({pw, pw, ph, ph, kernel[0] - 1, 0})));
}

namespace {
// Up to 32 groups, but at least 4 channels in each: with one channel a
// group, GroupNorm becomes instance norm and wipes out each channel's mean,
// which is all a flat region (a plain background) has to say.
int groups_for(int channels) {
  for (int g : {32, 16, 8, 4, 2})
    if (channels % g == 0 && channels / g >= 4) return g;
  return 1;
}
}  // namespace

NormKind parse_norm(const std::string& name) { return name == "group" ? NormKind::Group : NormKind::None; }

FrameNormImpl::FrameNormImpl(int channels, NormKind k) : kind(k), groups(groups_for(channels)) {
  if (kind == NormKind::None) return;
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
}

torch::Tensor FrameNormImpl::forward(const torch::Tensor& x) {
  if (kind == NormKind::None) return x;
  // GroupNorm per frame: [B, C, T, H, W] -> [B*T, C, H, W] -> norm -> back
  const auto B = x.size(0), C = x.size(1), T = x.size(2), H = x.size(3), W = x.size(4);
  auto y = torch::group_norm(x.transpose(1, 2).reshape({B * T, C, H, W}), groups, weight, bias, 1e-5);
  return y.view({B, T, C, H, W}).transpose(1, 2);
}

ResBlock3dImpl::ResBlock3dImpl(int in, int out, NormKind norm) {
  norm1 = register_module("norm1", FrameNorm(in, norm));
  conv1 = register_module("conv1", CausalConv3d(in, out, K3{3, 3, 3}));
  norm2 = register_module("norm2", FrameNorm(out, norm));
  conv2 = register_module("conv2", CausalConv3d(out, out, K3{3, 3, 3}));
  if (in != out) shortcut = register_module("shortcut", torch::nn::Conv3d(torch::nn::Conv3dOptions(in, out, 1)));
}

torch::Tensor ResBlock3dImpl::forward(const torch::Tensor& x) {
  // The block outlives its backward pass (the model owns it).
  if (checkpoint && is_training()) return checkpointed([this](const std::vector<torch::Tensor>& in) { return body(in[0]); }, {x});
  return body(x);
}

torch::Tensor ResBlock3dImpl::body(const torch::Tensor& x) {
  auto h = conv1(torch::silu(norm1(x)));
  h = conv2(torch::silu(norm2(h)));
  return (shortcut ? shortcut(x) : x) + h;
}

Downsample3dImpl::Downsample3dImpl(int channels, bool temporal) {
  conv = register_module("conv", CausalConv3d(channels, channels, K3{3, 3, 3}, K3{temporal ? 2 : 1, 2, 2}));
}

torch::Tensor Downsample3dImpl::forward(const torch::Tensor& x) { return conv(x); }

Upsample3dImpl::Upsample3dImpl(int channels, bool temporal) : st(temporal ? 2 : 1) {
  conv = register_module("conv", CausalConv3d(channels, channels * 4, K3{3, 3, 3}));
}

torch::Tensor Upsample3dImpl::forward(const torch::Tensor& x) {
  // x: [B, C, T, H, W] -> conv [B, C*4, T, H, W] -> depth-to-space [B, C, T, 2H, 2W]
  const auto B = x.size(0), C = x.size(1), T = x.size(2), H = x.size(3), W = x.size(4);
  auto y = conv(x).view({B, C, 2, 2, T, H, W}).permute({0, 1, 4, 5, 2, 6, 3}).reshape({B, C, T, H * 2, W * 2});
  if (st == 1) return y;
  // In time: repeat each frame and drop the first copy (1 + m -> 1 + 2m); the
  // causal convolutions after this layer tell the copies apart. Every output
  // frame comes from the same weights, so what the image stage trains is what
  // video frames use (depth-to-space in time would leave half the channels
  // untrained until the first video stage).
  return y.repeat_interleave(2, 2).narrow(2, 1, 2 * T - 1);
}

NormActImpl::NormActImpl(int channels, NormKind kind) { norm = register_module("norm", FrameNorm(channels, kind)); }

torch::Tensor NormActImpl::forward(const torch::Tensor& x) { return torch::silu(norm(x)); }

}  // namespace loong::tokenizer
