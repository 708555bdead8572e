#include "loong/tokenizer/discriminator.h"

#include <torch/torch.h>

#include "loong/core/error.h"

namespace F = torch::nn::functional;
namespace nn = torch::nn;

namespace loong::tokenizer {

PatchDiscriminatorImpl::PatchDiscriminatorImpl(int in_channels, int channels, int layers) {
  auto conv = [](int in, int out, int64_t stride) {
    return nn::Conv3d(nn::Conv3dOptions(in, out, {3, 4, 4}).stride({1, stride, stride}).padding({1, 1, 1}));
  };
  nn::Sequential s;
  s->push_back(conv(in_channels, channels, 2));
  s->push_back(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2)));
  int ch = channels;
  for (int i = 1; i < layers; ++i) {
    const int out = channels * std::min(1 << i, 8);
    s->push_back(conv(ch, out, 2));
    s->push_back(nn::GroupNorm(nn::GroupNormOptions(out % 32 == 0 ? 32 : 1, out)));
    s->push_back(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2)));
    ch = out;
  }
  s->push_back(conv(ch, 1, 1));
  net = register_module("net", s);
}

torch::Tensor PatchDiscriminatorImpl::forward(const torch::Tensor& video) { return net->forward(video); }

torch::Tensor generator_loss(const torch::Tensor& fake, const std::string& kind) {
  if (kind == "hinge") return -fake.mean();
  if (kind == "non_saturating") return F::softplus(-fake).mean();
  fail("gan_loss", "expected \"hinge\" or \"non_saturating\", got " + squote(kind));
}

torch::Tensor discriminator_loss(const torch::Tensor& real, const torch::Tensor& fake, const std::string& kind) {
  if (kind == "hinge") return 0.5 * (torch::relu(1 - real).mean() + torch::relu(1 + fake).mean());
  if (kind == "non_saturating") return 0.5 * (F::softplus(-real).mean() + F::softplus(fake).mean());
  fail("gan_loss", "expected \"hinge\" or \"non_saturating\", got " + squote(kind));
}

void LecamEma::update(double r, double f) {
  if (!started) {
    real = r, fake = f, started = true;
    return;
  }
  real = decay * real + (1 - decay) * r;
  fake = decay * fake + (1 - decay) * f;
}

torch::Tensor LecamEma::penalty(const torch::Tensor& r, const torch::Tensor& f) const {
  return torch::relu(r - fake).pow(2).mean() + torch::relu(real - f).pow(2).mean();
}

}  // namespace loong::tokenizer
