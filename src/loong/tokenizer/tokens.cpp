#include "loong/tokenizer/tokens.h"

#include <torch/torch.h>

#include "loong/core/causal_frames.h"
#include "loong/core/error.h"
#include "loong/io/safetensors.h"

namespace loong::tokenizer {

std::vector<int64_t> chunk_lengths(int64_t frames, int64_t chunk_frames, int f) {
  if (!is_causal_length(chunk_frames, f))
    fail("--chunk", "the chunk length must be 1 + " + std::to_string(f) + "k frames, got " +
                        std::to_string(chunk_frames));
  std::vector<int64_t> out;
  while (frames > 0) {
    int64_t n = std::min(frames, chunk_frames);
    n = 1 + (n - 1) / f * f;
    out.push_back(n);
    frames -= n;
    if (n < chunk_frames) break;  // the tail (anything left is dropped)
  }
  return out;
}

EncodedVideo encode_video(VideoTokenizer& model, const torch::Tensor& frames, int64_t chunk_frames, double fps) {
  if (frames.dim() != 4 || frames.size(3) != 3 || frames.size(0) < 1)
    fail("video", "expected uint8 frames [T, H, W, 3], got " + c10::str(frames.sizes()));
  torch::NoGradGuard ng;
  model->eval();
  const auto device = model->parameters().front().device();
  EncodedVideo out;
  out.fps = fps;
  out.codebook_size = model->config.codebook_size;
  std::vector<torch::Tensor> parts;
  int64_t at = 0;
  for (int64_t n : chunk_lengths(frames.size(0), chunk_frames, model->config.temporal_factor())) {
    auto ids = model->encode(frames_to_input(frames.narrow(0, at, n)).to(device))[0];  // [T', H', W']
    out.chunks.push_back(ids.size(0));
    parts.push_back(ids.cpu());
    at += n;
  }
  out.frames = at;
  out.dropped = frames.size(0) - at;
  out.tokens = torch::cat(parts);
  return out;
}

torch::Tensor decode_video(VideoTokenizer& model, const EncodedVideo& v) {
  torch::NoGradGuard ng;
  model->eval();
  if (v.codebook_size && v.codebook_size != model->config.codebook_size)
    fail("tokens", "written for a codebook of " + std::to_string(v.codebook_size) + " codes, the model has " +
                       std::to_string(model->config.codebook_size));
  const auto device = model->parameters().front().device();
  std::vector<torch::Tensor> parts;
  int64_t at = 0;
  for (int64_t n : v.chunks) {
    auto ids = v.tokens.narrow(0, at, n).unsqueeze(0).to(device, torch::kLong);
    parts.push_back(output_to_frames(model->decode(ids)));
    at += n;
  }
  return torch::cat(parts);
}

namespace {

// Calls fn on each batch of `frames` (uint8 [N, H, W, 3]) as one-frame clips,
// [n, 3, 1, H, W] on the model's device, in no-grad, eval mode; returns the
// results concatenated along dim 0.
template <class Fn>
torch::Tensor by_one_frame_clips(VideoTokenizer& model, const torch::Tensor& frames, int64_t batch, Fn fn) {
  if (frames.dim() != 4 || frames.size(3) != 3 || frames.scalar_type() != torch::kUInt8)
    fail("frames", "expected uint8 frames [N, H, W, 3], got " + c10::str(frames.sizes()));
  if (batch < 1) fail("batch", "expected at least 1 frame a batch, got " + std::to_string(batch));
  torch::NoGradGuard ng;
  model->eval();
  const auto device = model->parameters().front().device();
  std::vector<torch::Tensor> parts;
  for (int64_t at = 0; at < frames.size(0); at += batch) {
    // [1, 3, n, H, W] -> [n, 3, 1, H, W]: n clips of one frame.
    auto x = frames_to_input(frames.narrow(0, at, std::min(batch, frames.size(0) - at))).transpose(0, 2);
    parts.push_back(fn(x.to(device)));
  }
  return torch::cat(parts);
}

}  // namespace

torch::Tensor encode_frames(VideoTokenizer& model, const torch::Tensor& frames, int64_t batch) {
  return by_one_frame_clips(model, frames, batch, [&](const torch::Tensor& x) {
    return model->encode(x).select(1, 0).cpu();  // [n, 1, H', W'] -> [n, H', W']
  });
}

torch::Tensor round_trip_frames(VideoTokenizer& model, const torch::Tensor& frames, int64_t batch) {
  return by_one_frame_clips(model, frames, batch, [&](const torch::Tensor& x) {
    return output_to_frames(model->decode(model->encode(x)).transpose(0, 2));
  });
}

void save_tokens(const std::string& path, const EncodedVideo& v) {
  auto chunks = torch::tensor(v.chunks, torch::kLong).to(torch::kInt);
  safetensors::save(path, {{"tokens", v.tokens.to(torch::kInt)}, {"chunks", chunks}},
                    {{"format", "loong-video-tokens"},
                     {"fps", std::to_string(v.fps)},
                     {"frames", std::to_string(v.frames)},
                     {"codebook_size", std::to_string(v.codebook_size)}});
}

EncodedVideo load_tokens(const std::string& path) {
  std::map<std::string, std::string> meta;
  auto t = safetensors::load(path, &meta);
  auto f = meta.find("format");
  if (f == meta.end() || f->second != "loong-video-tokens")
    fail(path, "not a token file (expected safetensors with metadata format=loong-video-tokens, as written by "
               "`loong tokenizer encode`)");
  if (!t.count("tokens") || !t.count("chunks")) fail(path, "missing the 'tokens' or 'chunks' tensor");
  EncodedVideo v;
  v.tokens = t.at("tokens");
  if (v.tokens.dim() != 3 || v.tokens.is_floating_point())
    fail(path, "'tokens' must be an integer tensor [T', H', W'], got " + c10::str(v.tokens.sizes()));
  v.tokens = v.tokens.to(torch::kLong);
  auto c = t.at("chunks").to(torch::kLong);
  int64_t sum = 0;
  for (int64_t i = 0; i < c.numel(); ++i) {
    const int64_t n = c[i].item<int64_t>();
    if (n < 1) fail(path, "'chunks' entries must be positive");
    v.chunks.push_back(n);
    sum += n;
  }
  if (sum != v.tokens.size(0))
    fail(path, "'chunks' add up to " + std::to_string(sum) + " latent frames, 'tokens' has " +
                   std::to_string(v.tokens.size(0)));
  try {
    v.fps = meta.count("fps") ? std::stod(meta.at("fps")) : 0;
    v.frames = meta.count("frames") ? std::stoll(meta.at("frames")) : 0;
    v.codebook_size = meta.count("codebook_size") ? std::stoll(meta.at("codebook_size")) : 0;
  } catch (const std::exception&) {
    fail(path, "bad metadata: fps, frames and codebook_size must be numbers");
  }
  if (v.tokens.numel() > 0) {
    const auto lo = v.tokens.min().item<int64_t>(), hi = v.tokens.max().item<int64_t>();
    if (lo < 0 || (v.codebook_size > 0 && hi >= v.codebook_size))
      fail(path, "token ids out of range [0, " + std::to_string(v.codebook_size) + "): found " + std::to_string(lo) +
                     ".." + std::to_string(hi));
  }
  return v;
}

}  // namespace loong::tokenizer
