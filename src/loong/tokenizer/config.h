// Video tokenizer configuration: a causal 3D CNN after MAGVIT-2 with CVQ.
// Presets are data (JSON on disk), validated on load.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace loong::tokenizer {

struct TokenizerConfig {
  std::string name = "tiny";
  int image_size = 64;                 // training frame size (any multiple of 8 encodes)
  int in_channels = 3;
  int base_channels = 32;
  std::vector<int> channel_mult = {1, 1, 2, 2};  // one level per entry; 3 downsamples = x8 in space
  std::vector<bool> temporal_down = {true, true, false};  // per downsample: also halve time
  std::string norm = "none";           // per-frame norm: "group" or "none" (layers.h)
  int num_res_blocks = 1;              // per level (the decoder uses one more)
  // The decoder's own widths and depths, one entry a level (level 0 is full
  // resolution); empty: the encoder's channels and num_res_blocks + 1 blocks
  // a level. Decoding is most of a video's cost after the language model, and
  // almost all of it is the full-resolution levels, so a decoder can be made
  // lighter there than the encoder (docs/tokenizer.md, "A lighter decoder").
  std::vector<int> decoder_channels;
  std::vector<int> decoder_res_blocks;
  int codebook_size = 256;              // tiny: moving-fashion frames are mostly flat background
  int codebook_dim = 16;
  double beta = 0.25;                  // commitment weight
  double usage_decay = 0.99;           // CVQ running-usage decay

  int spatial_factor() const;          // 2^(levels-1)
  int temporal_factor() const;         // 2^(number of temporal downsamples)
  int levels() const { return static_cast<int>(channel_mult.size()); }
  int channels(int level) const { return base_channels * channel_mult.at(level); }
  int decoder_width(int level) const;   // decoder_channels[level], or channels(level)
  int decoder_blocks(int level) const;  // decoder_res_blocks[level], or num_res_blocks + 1
  // The config with the decoder keys removed: what an encoder and codebook
  // depend on (a decoder-only run may change everything else).
  nlohmann::json encoder_json() const;

  // 1 + f*k frames -> 1 + k latent frames; throws loong::Error otherwise.
  int latent_frames(int frames) const;

  nlohmann::json to_json() const;
  // `where` names the source (file) in errors.
  static TokenizerConfig from_json(const nlohmann::json& j, const std::string& where);
  static TokenizerConfig preset(const std::string& name);  // "tiny", "paper"
  static TokenizerConfig load(const std::string& path);
  void validate(const std::string& where) const;
};

std::vector<std::string> preset_names();

}  // namespace loong::tokenizer
