// Pre-tokenised training data: token shards (`loong tokenize`), memory-mapped
// at training time.
//
// File layout (little-endian):
//   header   "LOONGSHD" | u32 version (1) | u32 reserved | u32 text_vocab | u32 video_vocab
//   records  per sample: i32 text ids, then i32 video codes [T', H', W'] in (t, h, w) order,
//            then the caption's UTF-8 bytes
//   index    per sample: u64 offset | u32 text_len | u32 frames (T') | u32 height | u32 width |
//            u32 caption_bytes | u32 kind (0 image, 1 video chunk)
//   footer   u64 samples | u64 index_offset | u32 crc32 of everything before the footer |
//            "LOONGEND"
// A shard is written to a temporary name and renamed when complete. Opening
// checks the magic, version, sizes, every index entry's bounds and the CRC,
// so truncated or corrupt files are refused with a message naming the file.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace loong::lm {

enum class SampleKind : uint32_t { Image = 0, Video = 1 };

struct ShardSample {
  SampleKind kind = SampleKind::Video;
  std::vector<int32_t> text;      // text piece ids
  std::vector<int32_t> video;     // codes, T' * H' * W'
  int frames = 1, height = 0, width = 0;  // latent grid
  std::string caption;
};

class ShardWriter {
 public:
  ShardWriter(std::string path, int text_vocab, int video_vocab);
  ~ShardWriter();  // without finish(), nothing appears at `path`
  void add(const ShardSample& s);  // validates ids against the vocabularies
  void finish();                   // writes the index and footer, then renames into place
  int64_t size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A read-only view of one sample inside a mapped shard.
struct SampleView {
  SampleKind kind;
  const int32_t* text;
  int64_t text_len;
  const int32_t* video;  // frames * height * width codes
  int frames, height, width;
  std::string caption() const { return std::string(caption_data, caption_len); }
  const char* caption_data;
  int64_t caption_len;
  int64_t tokens_per_frame() const { return int64_t(height) * width; }
};

class ShardReader {
 public:
  explicit ShardReader(const std::string& path);  // maps and validates; throws loong::Error
  ~ShardReader();
  ShardReader(ShardReader&&) noexcept;
  ShardReader& operator=(ShardReader&&) noexcept;

  int64_t size() const;
  SampleView at(int64_t i) const;
  int text_vocab() const;
  int video_vocab() const;
  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Every *.loongshard file in a folder (sorted), or the one file given.
std::vector<std::string> list_shards(const std::string& path);

// All shards of a dataset as one indexable set. Every shard must have the
// same vocabulary sizes (they come from the same tokenizers).
class ShardSet {
 public:
  explicit ShardSet(const std::string& path);  // a folder of shards or one shard
  int64_t size() const { return static_cast<int64_t>(where_.size()); }
  SampleView at(int64_t i) const;
  int text_vocab() const { return text_vocab_; }
  int video_vocab() const { return video_vocab_; }
  // Samples with at least `latent_frames` latent frames (any sample's first
  // latent frame is an image: the tokenizer encodes frame 0 on its own).
  std::vector<int64_t> with_frames(int latent_frames) const;
  // Samples stored as images.
  std::vector<int64_t> images() const;
  // Throws, naming the shards and the model config, when the sizes differ.
  void check_vocab(int text_vocab, int video_vocab, const std::string& model_where) const;

 private:
  std::string path_;
  std::vector<ShardReader> readers_;
  std::vector<std::pair<int, int64_t>> where_;  // (reader, index)
  int text_vocab_ = 0, video_vocab_ = 0;
};

}  // namespace loong::lm
