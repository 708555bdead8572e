// Image-quality metrics on uint8 frames [T, H, W, 3].
#pragma once
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace loong::eval {

// PSNR in dB of each frame (peak 255); identical frames give 100.
std::vector<double> psnr_per_frame(const at::Tensor& a, const at::Tensor& b);

// SSIM of each frame (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5,
// K1 = 0.01, K2 = 0.03, valid region, averaged over the RGB channels).
std::vector<double> ssim_per_frame(const at::Tensor& a, const at::Tensor& b);

double mean(const std::vector<double>& v);

// How much a video moves, without a probe: the mean absolute change between
// consecutive frames, as a fraction of full scale (0 for a still video).
// NaN for fewer than 2 frames.
double mean_frame_change(const at::Tensor& frames);

// Continuity across clip boundaries (Fig. 6): the mean absolute change
// between consecutive frames into each boundary frame (the first frame of
// every clip after the first), over the same mean at all other frames. About
// 1 when the boundaries cannot be told apart from the rest of the video;
// larger when the picture jumps there. NaN without a boundary inside the
// video or without other frame pairs.
double boundary_jump(const at::Tensor& frames, const std::vector<int64_t>& boundaries);

}  // namespace loong::eval
