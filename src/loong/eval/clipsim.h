// CLIP similarity (docs/method.md §6: MSR-VTT CLIPSIM 0.2903): the cosine between
// CLIP's image embedding of each frame and its text embedding of the caption,
// unscaled (not CLIP's logit scale), averaged over frames and videos.
//
// CLIP itself is a TorchScript file the user gives (OpenAI's released jit
// archives, e.g. ViT-L-14.pt, with encode_image and encode_text methods);
// its byte-level BPE text tokenizer reads OpenAI's merges file
// (bpe_simple_vocab_16e6.txt.gz, gzipped or plain).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

namespace loong::eval {

// CLIP's tokenizer, written here because no Debian package has it: bytes
// mapped to printable characters, split into words (letters, single digits,
// other symbol runs, English contractions), each word merged by the ranked
// BPE merges, ids laid out as CLIP's vocabulary (256 byte symbols, the same
// with "</w>", the merges, <|startoftext|>, <|endoftext|>). Text is lower-cased
// and its whitespace collapsed; ftfy's mojibake repair is not done.
class ClipBpe {
 public:
  static ClipBpe load(const std::string& path);  // throws loong::Error naming the file
  std::vector<int64_t> encode(const std::string& text) const;
  // int64 [B, context]: <|startoftext|> ids <|endoftext|>, zero-padded; too
  // long texts are cut and still end with <|endoftext|>.
  at::Tensor tokenize(const std::vector<std::string>& texts, int64_t context = 77) const;
  int64_t sot() const { return sot_; }
  int64_t eot() const { return eot_; }
  int64_t vocab_size() const { return static_cast<int64_t>(encoder_.size()); }

 private:
  std::vector<std::string> bpe(const std::string& word) const;
  std::map<std::string, int64_t> encoder_;
  std::map<std::pair<std::string, std::string>, int> ranks_;
  std::vector<std::string> byte_symbol_;  // byte -> its printable symbol (UTF-8)
  int64_t sot_ = 0, eot_ = 0;
};

class ClipModel {
 public:
  ClipModel(const std::string& path, c10::Device device);
  ~ClipModel();
  ClipModel(ClipModel&&) noexcept;
  // uint8 frames [N, H, W, 3] -> L2-normalised embeddings [N, D] (float, CPU),
  // after CLIP's preprocessing (clip_preprocess).
  at::Tensor encode_images(const at::Tensor& frames);
  // int64 tokens [B, 77] -> L2-normalised embeddings [B, D] (float, CPU).
  at::Tensor encode_texts(const at::Tensor& tokens);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

struct ClipsimOptions {
  std::string clip, bpe, data;  // CLIP TorchScript file, its BPE merges, a manifest
  int max_frames = 16;          // per video, spread evenly; 0 = every frame
  double fps = 0;               // read at this rate; 0 = the videos' own
  int64_t max_videos = 0;       // 0 = all
  int batch = 32;               // frames per CLIP call
  std::string device = "cpu";   // cpu or cuda[:N]
};

// `loong eval clipsim`: the mean over videos of each video's mean frame-caption
// cosine, and each video's.
nlohmann::json clipsim_report(const ClipsimOptions& o);

// CLIP's preprocessing: shorter side to 224 (bicubic), centre crop 224 x 224,
// [0, 1], normalised by CLIP's mean and std: uint8 [N, H, W, 3] -> float [N, 3, 224, 224].
at::Tensor clip_preprocess(const at::Tensor& frames, int64_t size = 224);

}  // namespace loong::eval
