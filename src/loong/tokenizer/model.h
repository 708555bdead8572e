// The video tokenizer: causal 3D CNN encoder -> CVQ -> decoder.
//
//   video [B, 3, T, H, W] in [-1, 1], T = 1 + 4k
//   -> encoder -> z [B, D, 1 + k, H/8, W/8] -> CVQ -> ids [B, 1 + k, H/8, W/8]
//   -> decoder -> [B, 3, T, H, W]
// Parameter names: encoder.layers.N.*, quantizer.embedding.weight,
// quantizer.usage, decoder.layers.N.*.
#pragma once
#include <memory>
#include <mutex>
#include <string>

#include <torch/nn.h>

#include "loong/tokenizer/config.h"
#include "loong/tokenizer/pixels.h"
#include "loong/tokenizer/quantizer.h"

namespace loong::tokenizer {

class FrameDecoder;  // tokenizer/frame_decoder.h

struct TokenizerOutput {
  torch::Tensor reconstruction;   // [B, 3, T, H, W]
  torch::Tensor indices;          // [B, T', H', W'] int64
  torch::Tensor codebook_loss, commitment_loss;
  double perplexity = 0;
  int64_t codes_used = 0;
};

struct VideoTokenizerImpl : torch::nn::Module {
  explicit VideoTokenizerImpl(TokenizerConfig config);

  // [B, 3, T, H, W] -> continuous latents [B, D, T', H', W']
  torch::Tensor encode_latents(const torch::Tensor& video);
  // [B, 3, T, H, W] -> token ids [B, T', H', W']
  torch::Tensor encode(const torch::Tensor& video);
  // token ids [B, T', H', W'] -> [B, 3, T, H, W]
  torch::Tensor decode(const torch::Tensor& indices);
  // token ids [B, T', H', W'] (checked) -> their codebook vectors [B, D, T', H', W'], what decode decodes
  torch::Tensor embed_codes(const torch::Tensor& indices);
  // The decoder as tokenizer/frame_decoder.h runs it on the CPU, its weights
  // in `dtype` (one kept for each type): made on first use and again after
  // the decoder changed; nullptr where that layout does not cover the decoder.
  std::shared_ptr<const FrameDecoder> frame_decoder(c10::ScalarType dtype);
  // Training pass: quantise with straight-through gradients (updates CVQ
  // usage in training mode).
  TokenizerOutput forward(const torch::Tensor& video);

  int64_t parameter_count() const;

  TokenizerConfig config;
  torch::nn::Sequential encoder{nullptr}, decoder{nullptr};
  CvqQuantizer quantizer{nullptr};

 private:
  void check_input(const torch::Tensor& video) const;
  std::mutex frame_decoder_mutex_;
  std::shared_ptr<const FrameDecoder> frame_decoders_[2];
};
TORCH_MODULE(VideoTokenizer);

}  // namespace loong::tokenizer
