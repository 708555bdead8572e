// Language-model configuration: a LLaMA decoder over one vocabulary of text,
// video and special tokens (docs/method.md §3). Presets are data, validated on load.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace loong::lm {

struct LmConfig {
  std::string name = "tiny";
  int dim = 128;            // model width
  int n_layers = 4;
  int n_heads = 4;
  int n_kv_heads = 4;       // < n_heads: grouped-query attention (n_heads % n_kv_heads == 0)
  int ffn_dim = 512;        // SwiGLU hidden width
  double norm_eps = 1e-5;   // RMSNorm
  double rope_theta = 10000;
  // Rotary positions. "1d" (LLaMA's, the paper's): one index along the whole
  // sequence. "3d": text keeps those indices, but each video token turns by
  // its latent frame, row and column, each on its own third of the rotary
  // pairs, so "the same cell one frame back" is one fixed offset however wide
  // a frame is (docs/lm.md). The grid is the video tokenizer's latent frame;
  // the trainer takes it from the shards when not given.
  std::string rope = "1d";
  int rope_rows = 0, rope_cols = 0;  // "rope_grid": [rows, cols]; 0 = not yet known
  bool rope_3d() const { return rope == "3d"; }
  int max_seq_len = 4608;   // positions the model is trained for (4,352 video + text + specials)
  // The vocabulary: [0, text_vocab) text, then video_vocab codes, then 10 specials.
  int text_vocab = 512;
  int video_vocab = 256;

  int vocab_size() const;   // text + video + special
  int head_dim() const { return dim / n_heads; }

  // Parameter count from the shapes alone (no allocation: the 7B preset is
  // counted without building it).
  int64_t parameter_count() const;

  nlohmann::json to_json() const;
  // `where` names the source (file) in errors.
  static LmConfig from_json(const nlohmann::json& j, const std::string& where);
  static LmConfig preset(const std::string& name);  // "tiny", "700M", "3B", "7B"
  static LmConfig load(const std::string& path);
  void validate(const std::string& where) const;
};

std::vector<std::string> lm_preset_names();

// LLaMA's SwiGLU width for a model width: 2/3 of 4*dim, rounded up to a
// multiple of `multiple_of`.
int llama_ffn_dim(int dim, int multiple_of = 256);

}  // namespace loong::lm
