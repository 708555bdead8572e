// loong tokenize: encode a manifest's videos, images and captions once into
// token shards for language-model training (lm/shard_builder.h).
#include <cstdio>
#include <tuple>

#include "cli/commands.h"
#include "loong/core/runtime.h"
#include "loong/lm/shard_builder.h"

namespace loong::cli {

void add_tokenize_command(CLI::App& app, Globals& g) {
  struct Args {
    std::string data, tokenizer, text, out, shard = "0/1", device = "cpu";
    double fps = 6.5;
    int64_t chunk = 65;
    bool force = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("tokenize", "Encode a manifest once into token shards for language-model training");
  cmd->add_option("--data", a->data, "Manifest (JSONL or CSV) of videos and images with captions")->required();
  cmd->add_option("--tokenizer", a->tokenizer, "Video tokenizer (model, checkpoint or run folder)")->required();
  cmd->add_option("--text", a->text, "Text tokenizer folder (from `loong text train`)")->required();
  cmd->add_option("--out", a->out, "Folder for the shards")->required();
  auto* shard = cmd->add_option("--shard", a->shard,
                                "Encode only entries i, i+N, i+2N, ... into part i of N (many machines, one dataset); "
                                "under torchrun or Slurm the default is this rank's part");
  cmd->add_option("--fps", a->fps, "Frame rate videos are sampled at (65 frames = 10 s at 6.5)")
      ->check(CLI::Range(0.1, 240.0));
  cmd->add_option("--chunk", a->chunk, "Frames per video sample (1 + 4k): longer videos give several samples")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--device", a->device, "cpu or cuda");
  cmd->add_flag("--force", a->force, "Replace an existing part file");
  cmd->callback(command(g, [a, shard] {
    lm::ShardBuildOptions o;
    std::tie(o.part, o.parts) = shard_part(a->shard, shard->count() > 0);
    o.data = a->data, o.tokenizer = a->tokenizer, o.text = a->text, o.out = a->out;
    o.fps = a->fps, o.chunk = a->chunk, o.force = a->force;
    o.device = a->device;
    const auto r = lm::build_shard(o);
    std::printf("%s: %lld samples from %lld entries (%lld skipped as unreadable), %lld video tokens, %.1f s\n",
                r.path.c_str(), static_cast<long long>(r.samples), static_cast<long long>(r.entries),
                static_cast<long long>(r.unreadable), static_cast<long long>(r.tokens), r.seconds);
  }));
}

}  // namespace loong::cli
