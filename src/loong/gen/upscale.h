// Upscaling generated frames (paper §3.3 post-processing): bicubic or
// Lanczos-3 resampling by an integer factor. A learned or user-given
// super-resolution network plugs in through the same signature.
#pragma once
#include <functional>
#include <string>

#include <ATen/core/Tensor.h>

namespace loong::gen {

// uint8 frames [T, H, W, 3] -> uint8 [T, H*factor, W*factor, 3].
using Upscaler = std::function<at::Tensor(const at::Tensor& frames)>;

// "bicubic" (Keys, a = -0.75, as PyTorch) or "lanczos" (3 lobes, as Pillow
// and swscale). Throws loong::Error naming `--upscale-method` otherwise.
Upscaler resampling_upscaler(int factor, const std::string& method);

// The [out, in] matrix that resamples one axis with Lanczos-3 (edge pixels
// replicated, rows summing to 1).
at::Tensor lanczos_matrix(int64_t in, int64_t out);

}  // namespace loong::gen
