#include "loong/tokenizer/tokens.h"

#include <cstdio>

#include <torch/torch.h>

#include "loong/core/causal_frames.h"
#include "loong/core/error.h"
#include "loong/core/torch_compat.h"
#include "loong/io/safetensors.h"
#include "loong/ops/device.h"
#include "loong/tokenizer/frame_decoder.h"

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

bool decodes_in_bf16(bool bf16, c10::Device device) { return bf16 && native_bf16(device); }

torch::Tensor decode_clip(VideoTokenizer& model, const torch::Tensor& codes, int64_t skip, int64_t keep,
                          bool bf16) {
  torch::NoGradGuard ng;
  model->eval();
  const auto device = model->parameters().front().device();
  const bool in_bf16 = decodes_in_bf16(bf16, device);
  torch::Tensor frames;  // [B, T, H, W, 3]
  // On the CPU, frame by frame (tokenizer/frame_decoder.h: a clip 1.7x
  // faster in bfloat16, 1.2x in float32); elsewhere the model's own decode.
  auto frame_decoder = device.is_cpu() ? model->frame_decoder(in_bf16 ? torch::kBFloat16 : torch::kFloat) : nullptr;
  if (frame_decoder) {
    frames = video_to_frames(frame_decoder->forward(model->embed_codes(codes.to(device, torch::kLong))));
  } else {
    Bf16Autocast autocast(device.type(), in_bf16);
    frames = video_to_frames(model->decode(codes.to(device, torch::kLong)));
  }
  if (skip < 0 || keep < 0 || skip + keep > frames.size(1))
    fail("tokens", "a chunk decodes to " + std::to_string(frames.size(1)) + " frames; frames " + std::to_string(skip) +
                       ".." + std::to_string(skip + keep) + " were asked for");
  return frames.narrow(1, skip, keep).contiguous();
}

void decode_chunks(VideoTokenizer& model, const EncodedVideo& v, const std::function<void(const torch::Tensor&)>& fn) {
  if (v.codebook_size && v.codebook_size != model->config.codebook_size)
    fail("tokens", "written for a codebook of " + std::to_string(v.codebook_size) + " codes, the model has " +
                       std::to_string(model->config.codebook_size));
  const bool trim = !v.keep.empty();
  if (trim && (v.skip.size() != v.chunks.size() || v.keep.size() != v.chunks.size()))
    fail("tokens", "'skip' and 'keep' need one entry per chunk");
  const int f = model->config.temporal_factor();
  // Every chunk's frames checked before the first is decoded: a bad entry
  // late in a long file fails at once, not after minutes of decoding.
  if (trim)
    for (size_t c = 0; c < v.chunks.size(); ++c) {
      const int64_t frames = 1 + (v.chunks[c] - 1) * f;
      if (v.skip[c] + v.keep[c] > frames)
        fail("tokens", "chunk " + std::to_string(c) + " decodes to " + std::to_string(frames) + " frames; frames " +
                           std::to_string(v.skip[c]) + ".." + std::to_string(v.skip[c] + v.keep[c]) +
                           " were asked for ('skip' and 'keep')");
    }
  // Files of before 2026-12-06 meant bfloat16 on CUDA only: generation then
  // decoded in float32 on every CPU.
  const bool bf16 = v.bf16 && (!v.bf16_cuda_only || model->parameters().front().device().is_cuda());
  int64_t at = 0;
  for (size_t c = 0; c < v.chunks.size(); ++c) {
    const int64_t n = v.chunks[c], frames = 1 + (n - 1) * f;
    auto ids = v.tokens.narrow(0, at, n).unsqueeze(0);
    fn(decode_clip(model, ids, trim ? v.skip[c] : 0, trim ? v.keep[c] : frames, bf16)[0]);
    at += n;
  }
}

torch::Tensor decode_video(VideoTokenizer& model, const EncodedVideo& v) {
  std::vector<torch::Tensor> parts;
  decode_chunks(model, v, [&](const torch::Tensor& f) { parts.push_back(f); });
  if (parts.empty()) fail("tokens", "no chunk to decode");
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

namespace {
// Every digit of a double (std::to_string keeps 6 decimals: 30000/1001 fps
// would come back as 29.970030 and the re-decoded file would differ).
std::string exact_number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

torch::Tensor int32_vector(const std::vector<int64_t>& v) {
  return torch::tensor(v, torch::kLong).to(torch::kInt);
}

// An int32 [n] tensor of the file as positive or non-negative counts.
std::vector<int64_t> counts(const safetensors::TensorMap& t, const std::string& name, int64_t min,
                            const std::string& path) {
  const auto& x = t.at(name);
  if (x.dim() != 1 || x.is_floating_point())
    fail(path, squote(name) + " must be an integer tensor [n], got " + c10::str(x.sizes()));
  auto c = x.to(torch::kLong).contiguous();
  std::vector<int64_t> out(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
  for (int64_t n : out)
    if (n < min) fail(path, squote(name) + " entries must be " + (min > 0 ? "positive" : "non-negative"));
  return out;
}
}  // namespace

void save_tokens(const std::string& path, const EncodedVideo& v) {
  std::vector<std::pair<std::string, at::Tensor>> tensors = {{"tokens", v.tokens.to(torch::kInt)},
                                                             {"chunks", int32_vector(v.chunks)}};
  if (!v.keep.empty()) {
    tensors.emplace_back("skip", int32_vector(v.skip));
    tensors.emplace_back("keep", int32_vector(v.keep));
  }
  std::map<std::string, std::string> meta = {{"format", "loong-video-tokens"},
                                             {"fps", exact_number(v.fps)},
                                             {"frames", std::to_string(v.frames)},
                                             {"codebook_size", std::to_string(v.codebook_size)}};
  if (v.bf16) meta[v.bf16_cuda_only ? "cuda_decode" : "decode"] = "bf16";
  if (!v.generation.empty()) meta["generation"] = v.generation;
  safetensors::save(path, tensors, meta);
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
  v.chunks = counts(t, "chunks", 1, path);
  int64_t sum = 0;
  for (int64_t n : v.chunks) sum += n;
  if (t.count("skip") != t.count("keep")) fail(path, "has one of 'skip' and 'keep' but not the other");
  if (t.count("keep")) {
    v.skip = counts(t, "skip", 0, path);
    v.keep = counts(t, "keep", 0, path);
    if (v.skip.size() != v.chunks.size() || v.keep.size() != v.chunks.size())
      fail(path, "'skip' and 'keep' need one entry per chunk (" + std::to_string(v.chunks.size()) + ")");
  }
  for (const char* key : {"decode", "cuda_decode"})  // cuda_decode: files written before 2026-12-06
    if (meta.count(key)) {
      if (meta.at(key) != "bf16") fail(path, std::string("bad metadata: ") + key + " must be 'bf16'");
      v.bf16 = true;
      v.bf16_cuda_only = v.bf16_cuda_only || std::string(key) == "cuda_decode";
    }
  if (meta.count("decode") && meta.count("cuda_decode")) fail(path, "bad metadata: both decode and cuda_decode");
  if (meta.count("generation")) v.generation = meta.at("generation");
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
