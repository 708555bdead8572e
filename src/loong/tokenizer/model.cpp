#include "loong/tokenizer/model.h"

#include <torch/torch.h>

#include "loong/core/error.h"
#include "loong/tokenizer/frame_decoder.h"
#include "loong/tokenizer/layers.h"

namespace loong::tokenizer {

VideoTokenizerImpl::VideoTokenizerImpl(TokenizerConfig c) : config(std::move(c)) {
  config.validate("tokenizer config");
  const int L = config.levels();
  const NormKind norm = parse_norm(config.norm);
  torch::nn::Sequential enc;
  enc->push_back(CausalConv3d(config.in_channels, config.channels(0), K3{3, 3, 3}));
  int ch = config.channels(0);
  for (int i = 0; i < L; ++i) {
    for (int b = 0; b < config.num_res_blocks; ++b) {
      enc->push_back(ResBlock3d(ch, config.channels(i), norm));
      ch = config.channels(i);
    }
    if (i < L - 1) enc->push_back(Downsample3d(ch, config.temporal_down[i]));
  }
  enc->push_back(ResBlock3d(ch, ch, norm));
  enc->push_back(ResBlock3d(ch, ch, norm));
  enc->push_back(NormAct(ch, norm));
  enc->push_back(CausalConv3d(ch, config.codebook_dim, K3{1, 1, 1}));
  encoder = register_module("encoder", enc);

  quantizer = register_module("quantizer", CvqQuantizer(config.codebook_size, config.codebook_dim, config.beta,
                                                        config.usage_decay));

  torch::nn::Sequential dec;
  ch = config.decoder_width(L - 1);
  dec->push_back(CausalConv3d(config.codebook_dim, ch, K3{3, 3, 3}));
  dec->push_back(ResBlock3d(ch, ch, norm));
  dec->push_back(ResBlock3d(ch, ch, norm));
  for (int i = L - 1; i >= 0; --i) {
    for (int b = 0; b < config.decoder_blocks(i); ++b) {
      dec->push_back(ResBlock3d(ch, config.decoder_width(i), norm));
      ch = config.decoder_width(i);
    }
    if (i > 0) dec->push_back(Upsample3d(ch, config.temporal_down[i - 1]));
  }
  dec->push_back(NormAct(ch, norm));
  dec->push_back(CausalConv3d(ch, config.in_channels, K3{3, 3, 3}));
  decoder = register_module("decoder", dec);
}

void VideoTokenizerImpl::check_input(const torch::Tensor& v) const {
  if (v.dim() != 5 || v.size(1) != config.in_channels)
    fail("tokenizer input", "expected [B, " + std::to_string(config.in_channels) + ", T, H, W], got " +
                                c10::str(v.sizes()));
  config.latent_frames(static_cast<int>(v.size(2)));
  const int f = config.spatial_factor();
  if (v.size(3) % f != 0 || v.size(4) % f != 0)
    fail("tokenizer input", "frame height and width must be multiples of " + std::to_string(f) + ", got " +
                                std::to_string(v.size(3)) + "x" + std::to_string(v.size(4)));
}

torch::Tensor VideoTokenizerImpl::encode_latents(const torch::Tensor& video) {
  check_input(video);
  return encoder->forward(video);
}

namespace {
// [B, D, T, H, W] <-> [B*T*H*W, D]
torch::Tensor flatten_latents(const torch::Tensor& z) { return z.permute({0, 2, 3, 4, 1}).reshape({-1, z.size(1)}); }
}  // namespace

torch::Tensor VideoTokenizerImpl::encode(const torch::Tensor& video) {
  auto z = encode_latents(video);  // [B, D, T', H', W']
  return quantizer->lookup(flatten_latents(z)).view({z.size(0), z.size(2), z.size(3), z.size(4)});
}

torch::Tensor VideoTokenizerImpl::decode(const torch::Tensor& indices) {
  return decoder->forward(embed_codes(indices));
}

std::shared_ptr<const FrameDecoder> VideoTokenizerImpl::frame_decoder(c10::ScalarType dtype) {
  std::lock_guard<std::mutex> lock(frame_decoder_mutex_);
  auto& slot = frame_decoders_[dtype == c10::ScalarType::BFloat16 ? 1 : 0];  // one a type: float, bfloat16
  if (!slot || slot->dtype() != dtype || !slot->current(*this)) slot = FrameDecoder::build(*this, dtype);
  return slot->supported() ? slot : nullptr;
}

torch::Tensor VideoTokenizerImpl::embed_codes(const torch::Tensor& indices) {
  if (indices.dim() != 4) fail("tokens", "expected token ids [B, T', H', W'], got " + c10::str(indices.sizes()));
  const auto lo = indices.min().item<int64_t>(), hi = indices.max().item<int64_t>();
  if (lo < 0 || hi >= config.codebook_size)
    fail("tokens", "ids must be in [0, " + std::to_string(config.codebook_size) + "), got [" + std::to_string(lo) +
                       ", " + std::to_string(hi) + "]");
  return quantizer->embed(indices.to(torch::kLong)).permute({0, 4, 1, 2, 3});  // [B, D, T', H', W']
}

TokenizerOutput VideoTokenizerImpl::forward(const torch::Tensor& video) {
  auto z = encode_latents(video);
  const auto B = z.size(0), D = z.size(1), T = z.size(2), H = z.size(3), W = z.size(4);
  auto q = quantizer->forward(flatten_latents(z));
  TokenizerOutput out;
  auto zq = q.z_q.view({B, T, H, W, D}).permute({0, 4, 1, 2, 3});
  out.reconstruction = decoder->forward(zq);
  out.indices = q.indices.view({B, T, H, W});
  out.codebook_loss = q.codebook_loss;
  out.commitment_loss = q.commitment_loss;
  out.perplexity = q.perplexity;
  out.codes_used = q.codes_used;
  return out;
}

int64_t VideoTokenizerImpl::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace loong::tokenizer
