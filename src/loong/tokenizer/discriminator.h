// 3D PatchGAN discriminator for tokenizer training: strided 3D convolutions
// over [B, 3, T, H, W] giving a grid of real/fake logits (one per space-time
// patch). Time is never strided, so it takes single images (T = 1) as well as
// clips. Not causal: it only judges, it never runs at inference.
#pragma once
#include <torch/nn.h>

namespace loong::tokenizer {

struct PatchDiscriminatorImpl : torch::nn::Module {
  PatchDiscriminatorImpl(int in_channels, int channels, int layers);
  torch::Tensor forward(const torch::Tensor& video);  // -> logits [B, 1, T, h, w]
  torch::nn::Sequential net{nullptr};
};
TORCH_MODULE(PatchDiscriminator);

// Generator and discriminator objectives ("hinge" or "non_saturating").
torch::Tensor generator_loss(const torch::Tensor& fake_logits, const std::string& kind);
torch::Tensor discriminator_loss(const torch::Tensor& real_logits, const torch::Tensor& fake_logits,
                                 const std::string& kind);

// LeCAM regularisation (Tseng et al., CVPR 2021): keeps the discriminator's
// predictions near exponential moving averages of its past predictions on
// the other class, which stabilises GAN training with little data.
struct LecamEma {
  double real = 0, fake = 0, decay = 0.999;
  bool started = false;
  void update(double real_mean, double fake_mean);
  torch::Tensor penalty(const torch::Tensor& real_logits, const torch::Tensor& fake_logits) const;
};

}  // namespace loong::tokenizer
