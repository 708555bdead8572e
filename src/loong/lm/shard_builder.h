// `loong tokenize`: a manifest's videos, images and captions encoded once
// into a token shard for language-model training (lm/shards.h). One part of
// N takes entries i, i + N, i + 2N, ... so that many machines can share one
// dataset.
#pragma once
#include <cstdint>
#include <string>
#include <utility>

#include <c10/core/Device.h>

namespace loong::lm {

struct ShardBuildOptions {
  std::string data;       // manifest (JSONL or CSV)
  std::string tokenizer;  // video tokenizer: model, checkpoint or run folder
  std::string text;       // text tokenizer folder
  std::string out;        // folder for the part files
  int part = 0, parts = 1;
  double fps = 6.5;       // frame rate videos are sampled at
  int64_t chunk = 65;     // frames per video sample (1 + 4k)
  bool force = false;     // replace an existing part file
  std::string device = "cpu";
};

struct ShardBuildResult {
  std::string path;  // the part file written
  int64_t samples = 0, entries = 0, unreadable = 0, tokens = 0;
  double seconds = 0;
};

// "i/N" -> {i, N} with 0 <= i < N; errors name --shard.
std::pair<int, int> parse_shard(const std::string& s);
// "part-00003-of-00008.loongshard"
std::string shard_part_name(int part, int parts);

// Encodes part `part` of `parts` of the manifest into OUT/shard_part_name().
// Refuses an existing part file unless `force`.
ShardBuildResult build_shard(const ShardBuildOptions& o);

}  // namespace loong::lm
