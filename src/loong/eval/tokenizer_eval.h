// Evaluating a video tokenizer (`loong tokenizer reconstruct` and `eval`):
// videos read at the model's size, encoded, decoded and compared.
#pragma once
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "loong/io/video.h"
#include "loong/tokenizer/model.h"
#include "loong/tokenizer/tokens.h"

namespace loong::eval {

// Reads a video for `model`: frames at `fps`, the shorter side to `size`
// (0: the model's), centre crop. Fails naming --size when it is not a
// multiple of the model's spatial factor.
video::Video read_for_model(const std::string& path, tokenizer::VideoTokenizer model, double fps, int size);

struct Reconstruction {
  video::Video input;     // as read
  tokenizer::EncodedVideo tokens;
  at::Tensor frames;      // uint8 [T, H, W, 3]: the decoded tokens
  at::Tensor reference;   // the input's first T frames (trailing frames a chunk cannot take are left out)
  double psnr = 0, ssim = 0;
};

// Video -> tokens -> video, in chunks of `chunk` frames (1 + 4k).
Reconstruction reconstruct(tokenizer::VideoTokenizer model, const std::string& path, double fps, int size,
                           int64_t chunk);

struct TokenizerEvalOptions {
  std::string model;     // as given (reported as the folder it resolves to)
  std::string data;      // manifest of held-out videos and images
  int frames = 17;       // per clip (1 + 4k), from each entry's start
  double fps = 6.5;
  int max_clips = 0;     // 0 = all entries
  std::string detector;  // I3D TorchScript file: also FVD between originals and reconstructions
  std::string device = "cpu";
  bool bf16 = false;     // decode as generation does: bfloat16 where native (tokenizer::decode_clip)
};

// `loong tokenizer eval`: PSNR and SSIM (overall and per frame position),
// codebook usage and perplexity, and FVD with a detector.
nlohmann::json evaluate_tokenizer(const TokenizerEvalOptions& o);

}  // namespace loong::eval
