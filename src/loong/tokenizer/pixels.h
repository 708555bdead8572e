// The tokenizer's pixel convention, written once: uint8 frames in [0, 255]
// are the float video x / 127.5 - 1 in [-1, 1], channels first, and back
// (rounded and clamped). Frames are [.., T, H, W, 3] as video I/O reads and
// writes them; videos [.., 3, T, H, W] as the 3D CNN takes them.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace loong::tokenizer {

// uint8 frames [B, T, H, W, 3] -> float video [B, 3, T, H, W] in [-1, 1] on `device`.
at::Tensor frames_to_video(const at::Tensor& frames, c10::Device device);
// float video [B, 3, T, H, W] in [-1, 1] -> uint8 frames [B, T, H, W, 3] on the CPU.
at::Tensor video_to_frames(const at::Tensor& video);

// One clip: uint8 frames [T, H, W, 3] -> float [1, 3, T, H, W] (on the frames' device).
at::Tensor frames_to_input(const at::Tensor& frames);
// float [B, 3, T, H, W] (or [3, T, H, W]) -> uint8 frames [T, H, W, 3] of the first item.
at::Tensor output_to_frames(const at::Tensor& video);

}  // namespace loong::tokenizer
