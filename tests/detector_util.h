// A stand-in for the I3D detector, with StyleGAN-V's forward signature:
// per-channel mean and standard deviation of a clip as its features.
#pragma once
#include <string>

#include <torch/script.h>

namespace loong::test {

inline void write_stats_detector(const std::string& path) {
  torch::jit::Module m("Stats");
  m.define(R"(
def forward(self, x, rescale: bool, resize: bool, return_features: bool):
    f = x.float()
    return torch.cat([f.mean(dim=[2, 3, 4]), f.std(dim=[2, 3, 4])], 1)
)");
  m.save(path);
}

}  // namespace loong::test
