// TorchScript stand-ins for the pretrained networks evaluation loads.
//
// A stand-in for the I3D detector, with StyleGAN-V's forward signature:
// per-channel mean and standard deviation of a clip as its features.
#pragma once
#include <fstream>
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

// A stand-in for CLIP: the image "embedding" is the per-channel mean of the
// preprocessed image, the text "embedding" tokens 1..3 as numbers.
inline void write_tiny_clip(const std::string& path) {
  torch::jit::Module m("TinyClip");
  m.define(R"(
def encode_image(self, x):
    return x.mean(dim=[2, 3])
def encode_text(self, t):
    return t[:, 1:4].float()
)");
  m.save(path);
}

// A small merges file in the format of CLIP's bpe_simple_vocab_16e6.txt.
inline void write_test_bpe(const std::string& path) {
  std::ofstream(path) << "#version: 0.2\ns h\nsh i\nshi r\nshir t</w>\nr e\nre d</w>\n";
}

}  // namespace loong::test
