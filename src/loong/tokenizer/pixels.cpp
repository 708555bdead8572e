#include "loong/tokenizer/pixels.h"

#include <torch/torch.h>

#include "loong/core/error.h"

namespace loong::tokenizer {

at::Tensor frames_to_video(const at::Tensor& frames, c10::Device device) {
  return frames.permute({0, 4, 1, 2, 3}).to(device, torch::kFloat).div(127.5).sub(1.0);
}

at::Tensor video_to_frames(const at::Tensor& video) {
  return video.detach().to(torch::kCPU, torch::kFloat).add(1.0).mul(127.5).round().clamp(0, 255)
      .to(torch::kUInt8).permute({0, 2, 3, 4, 1}).contiguous();
}

at::Tensor frames_to_input(const at::Tensor& frames) {
  if (frames.dim() != 4 || frames.size(3) != 3 || frames.scalar_type() != torch::kUInt8)
    fail("frames", "expected uint8 frames [T, H, W, 3], got " + c10::str(frames.sizes()));
  return frames_to_video(frames.unsqueeze(0), frames.device());
}

at::Tensor output_to_frames(const at::Tensor& video) {
  return video_to_frames(video.dim() == 5 ? video.narrow(0, 0, 1) : video.unsqueeze(0))[0];
}

}  // namespace loong::tokenizer
