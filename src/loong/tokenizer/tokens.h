// Whole videos to tokens and back, chunk by chunk.
//
// The tokenizer takes 1 + 4k frames; long videos are cut into chunks of at
// most `chunk_frames` (default 65, 10 s at 6.5 fps) and each chunk is encoded
// on its own, exactly as long-video generation re-encodes each clip. A tail
// that is not 1 + 4k frames long is shortened to the largest such length.
//
// Token files (safetensors): "tokens" int32 [T', H', W'] and "chunks" int32
// [n] (latent frames per chunk), metadata format=loong-video-tokens, fps,
// frames, codebook_size.
//
// Generated videos (`loong generate --save-codes`) are token files too: one
// chunk per clip, its whole grid (the re-encoded frames it started from
// included), and two more int32 [n] tensors, "skip" and "keep": the frames of
// each decoded chunk dropped at its start (the condition, already in the
// video) and those kept after them, exactly as generation emitted them.
// Metadata "generation" holds the settings and the clip plan as JSON, and
// "decode"="bf16" says the clips decode in bfloat16 where the device computes
// it natively (ops/device.h native_bf16), as generation did (frames then
// match generation's bit for bit on a machine of the same kind). Files
// written before 2026-12-06 say "cuda_decode"="bf16": bfloat16 on CUDA only,
// as generation then decoded.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "loong/tokenizer/model.h"

namespace loong::tokenizer {

struct EncodedVideo {
  torch::Tensor tokens;              // int64 [T', H', W'] on the CPU
  std::vector<int64_t> chunks;       // latent frames per chunk
  int64_t frames = 0;                // frames encoded (input frames minus any dropped tail)
  int64_t dropped = 0;               // input frames left out at the end
  double fps = 0;
  int64_t codebook_size = 0;
  // Per chunk: frames dropped at the start of its decoded frames and frames
  // kept after them (empty: every frame of every chunk).
  std::vector<int64_t> skip, keep;
  bool bf16 = false;            // decode in bfloat16 autocast where native (generated codes)
  bool bf16_cuda_only = false;  // ... but only on CUDA ("cuda_decode", files before 2026-12-06)
  std::string generation;    // JSON: the settings and clip plan of a generated video ("" = none)
};

// Frame counts of the chunks a video of `frames` frames is cut into.
std::vector<int64_t> chunk_lengths(int64_t frames, int64_t chunk_frames, int temporal_factor);

// uint8 frames [T, H, W, 3] -> tokens. Runs in no-grad, eval mode.
EncodedVideo encode_video(VideoTokenizer& model, const torch::Tensor& frames, int64_t chunk_frames = 65,
                          double fps = 0);
// tokens -> uint8 frames [T, H, W, 3] (each chunk's kept frames, in order).
torch::Tensor decode_video(VideoTokenizer& model, const EncodedVideo& video);
// The same one chunk at a time: fn(frames [t, H, W, 3]) with each chunk's
// kept frames, in order, none held after fn returns (a long video's decode
// need not fit in memory).
void decode_chunks(VideoTokenizer& model, const EncodedVideo& video, const std::function<void(const torch::Tensor&)>& fn);
// The decode of one generated clip, shared by generation and decode_video so
// that both give the same frames: codes int64 [B, L, h, w] -> uint8 frames
// [B, keep, H, W, 3] on the CPU, frames [skip, skip + keep) of each decoded
// item; with `bf16`, in bfloat16 autocast where the device computes it
// natively (native_bf16: CUDA, CPUs with AMX or AVX-512 BF16; 2x faster on
// such a CPU, docs/benchmarks.md), else in float32. Runs in no-grad, eval mode.
torch::Tensor decode_clip(VideoTokenizer& model, const torch::Tensor& codes, int64_t skip, int64_t keep,
                          bool bf16);
// Whether decode_clip with `bf16` runs in bfloat16 on `device` (what reports
// and codes files record).
bool decodes_in_bf16(bool bf16, c10::Device device);
// Each frame encoded as a one-frame clip of its own (an image), in batches of
// `batch`: uint8 [N, H, W, 3] -> int64 token ids [N, H', W'] on the CPU, the
// ids encode_video gives each frame alone. Runs in no-grad, eval mode.
torch::Tensor encode_frames(VideoTokenizer& model, const torch::Tensor& frames, int64_t batch = 64);
// Each frame through the tokenizer and back as a one-frame clip of its own,
// in batches of `batch`: uint8 [N, H, W, 3] -> the same. Runs in no-grad, eval mode.
torch::Tensor round_trip_frames(VideoTokenizer& model, const torch::Tensor& frames, int64_t batch = 64);

void save_tokens(const std::string& path, const EncodedVideo& video);
EncodedVideo load_tokens(const std::string& path);

}  // namespace loong::tokenizer
