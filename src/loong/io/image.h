// Still images: PNG output (libpng) and contact sheets (grids of frames).
#pragma once
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace loong::image {

// Writes uint8 [H, W, 3] (RGB) or [H, W] (grey) as PNG, atomically.
void write_png(const std::string& path, const at::Tensor& image);

// Tiles equally sized uint8 images [H, W, 3] into a grid with `pad` pixels of
// `background` between and around them. cols <= 0 picks a near-square grid.
at::Tensor grid(const std::vector<at::Tensor>& tiles, int cols = 0, int pad = 2, int background = 24);

// Indices of n frames spread evenly over [0, total) (all of them if n >= total).
std::vector<int64_t> spread_indices(int64_t total, int64_t n);

// A contact sheet of a clip [T, H, W, 3]: up to max_tiles evenly spaced frames.
at::Tensor contact_sheet(const at::Tensor& frames, int max_tiles = 16, int cols = 0);

}  // namespace loong::image
