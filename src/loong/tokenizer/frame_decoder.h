// The tokenizer's decoder for inference on the CPU, frame by frame.
//
// LibTorch's CPU conv3d (oneDNN) is slow here for two reasons the 3D layout
// causes, not the arithmetic: every causal convolution first copies its input
// into a zero-padded tensor, and in bfloat16 oneDNN writes its output
// channels-last and LibTorch 1.13 copies it back to [B, C, T, H, W] (over
// half of a bfloat16 conv3d's time on a 64x64 clip, docs/benchmarks.md). So
// this decoder keeps every activation as a batch of frames, [B*T, C, H, W]
// in channels-last memory (that is [B, T, H, W, C]), where oneDNN's 2D
// convolution reads and writes in place, and runs each causal kt x kh x kw
// convolution as kt 2D convolutions, one per temporal tap, each added to the
// frames it reaches (tap k of kt reaches frame t from frame t - (kt - 1 - k);
// the zero frames of the causal padding add nothing, so no padding is made).
// Spatial padding is the 2D convolution's own.
//
// Same layers, weights and order of operations as VideoTokenizerImpl's
// decoder; each tap's output is rounded to the decoder's type before the
// taps are summed (in float32), so in bfloat16 the frames differ from
// conv3d's by bfloat16 rounding, in float32 by float rounding. Group norms
// run in float32, as autocast runs them, their output rounded to the
// decoder's type before SiLU.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <c10/core/Storage.h>

namespace loong::tokenizer {

struct VideoTokenizerImpl;

class FrameDecoder {
 public:
  // A copy of `model`'s decoder weights in `dtype` (float or bfloat16), laid
  // out for the frame layout. For a decoder this layout does not cover (a
  // strided convolution or an unknown layer) it holds no weights and
  // supported() is false: the model's own decode runs then.
  static std::unique_ptr<FrameDecoder> build(VideoTokenizerImpl& model, c10::ScalarType dtype);
  bool supported() const { return supported_; }

  // Latents [B, D, T', H', W'] (any float type, on the CPU) -> the video
  // [B, 3, T, H, W] in `dtype`, as a view of frame-major memory
  // ([B, T, H, W, 3] contiguous, what video_to_frames writes).
  at::Tensor forward(const at::Tensor& latents) const;

  // Whether the copy still is the model's decoder (no layer added or
  // replaced, no weight changed in place or replaced since build: each
  // weight's storage, held, and its version counter are compared).
  bool current(VideoTokenizerImpl& model) const;

  c10::ScalarType dtype() const { return dtype_; }

  struct Layer;

 private:
  FrameDecoder() = default;
  c10::ScalarType dtype_ = c10::ScalarType::Float;
  bool supported_ = false;
  std::vector<std::shared_ptr<Layer>> layers_;
  std::vector<const void*> modules_;                        // the decoder's layers at build
  std::vector<std::pair<c10::Storage, int64_t>> versions_;  // each parameter's storage and version at build
};

}  // namespace loong::tokenizer
