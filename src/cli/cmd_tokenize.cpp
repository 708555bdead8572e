// loong tokenize: encode a manifest's videos, images and captions once into
// token shards for language-model training (lm/shards.h).
#include <chrono>
#include <cstdio>
#include <filesystem>

#include <torch/torch.h>

#include "cli/commands.h"
#include "loong/core/error.h"
#include "loong/core/runtime.h"
#include "loong/lm/shards.h"
#include "loong/text/text_tokenizer.h"
#include "loong/tokenizer/checkpoint.h"
#include "loong/tokenizer/tokens.h"
#ifdef LOONG_WITH_FFMPEG
#include "loong/data/dataset.h"
#endif

namespace fs = std::filesystem;

namespace loong::cli {

namespace {
// "i/N" -> {i, N} with 0 <= i < N.
std::pair<int, int> parse_shard(const std::string& s) {
  int i = -1, n = 0;
  char tail = 0;
  if (std::sscanf(s.c_str(), "%d/%d%c", &i, &n, &tail) != 2 || n < 1 || i < 0 || i >= n)
    fail("--shard", "expected i/N with 0 <= i < N (e.g. 0/4), got " + squote(s));
  return {i, n};
}

std::string part_name(int i, int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "part-%05d-of-%05d.loongshard", i, n);
  return buf;
}
}  // namespace

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
  cmd->add_option("--shard", a->shard, "Encode only entries i, i+N, i+2N, ... into part i of N (many machines, one dataset)");
  cmd->add_option("--fps", a->fps, "Frame rate videos are sampled at (65 frames = 10 s at 6.5)")
      ->check(CLI::Range(0.1, 240.0));
  cmd->add_option("--chunk", a->chunk, "Frames per video sample (1 + 4k): longer videos give several samples")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--device", a->device, "cpu or cuda");
  cmd->add_flag("--force", a->force, "Replace an existing part file");
  cmd->callback(command(g, [a] {
#ifndef LOONG_WITH_FFMPEG
    fail("loong tokenize", "this build has no FFmpeg support (configure with -DLOONG_WITH_FFMPEG=ON)");
#else
    const auto [part, parts] = parse_shard(a->shard);
    const std::string path = (fs::path(a->out) / part_name(part, parts)).string();
    if (fs::exists(path) && !a->force) fail(path, "already exists; pass --force to replace it");
    auto text = text::TextTokenizer::load(a->text);
    auto model = tokenizer::load_model(a->tokenizer, parse_device(a->device));
    const int tf = model->config.temporal_factor();
    if ((a->chunk - 1) % tf != 0)
      fail("--chunk", "expected 1 + " + std::to_string(tf) + "k frames, got " + std::to_string(a->chunk));

    data::ClipOptions co;
    co.read.fps = a->fps;
    co.read.size = model->config.image_size;
    data::ClipDataset ds(data::load_manifest(a->data), co);
    lm::ShardWriter w(path, text.vocab_size(), model->config.codebook_size);
    int64_t entries = 0, tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    auto add = [&](lm::SampleKind kind, const std::vector<int32_t>& ids, const std::string& caption,
                   const int32_t* codes, int64_t frames, int64_t height, int64_t width) {
      lm::ShardSample s;
      s.kind = kind;
      s.text = ids;
      s.video.assign(codes, codes + frames * height * width);
      s.frames = static_cast<int>(frames);
      s.height = static_cast<int>(height);
      s.width = static_cast<int>(width);
      s.caption = caption;
      w.add(s);
      tokens += frames * height * width;
    };
    // Images are encoded in batches: one at a time, a still's few small
    // convolutions cost less than the threads' start and stop around each
    // (the 32,768 stills of the default model's recipe took most of its
    // tokenizing time). They are written in manifest order all the same.
    constexpr int64_t kImageBatch = 64;
    struct Pending {
      std::vector<int32_t> ids;
      std::string caption;
      torch::Tensor frame;  // [H, W, 3] uint8
    };
    std::vector<Pending> images;
    auto flush_images = [&] {
      if (images.empty()) return;
      std::vector<torch::Tensor> frames;
      for (const auto& p : images) frames.push_back(p.frame);
      auto all = tokenizer::encode_frames(model, torch::stack(frames), kImageBatch).to(torch::kInt).contiguous();
      const int32_t* codes = all.data_ptr<int32_t>();
      const int64_t per_frame = all.size(1) * all.size(2);
      for (const auto& p : images) {
        add(lm::SampleKind::Image, p.ids, p.caption, codes, 1, all.size(1), all.size(2));
        codes += per_frame;
      }
      images.clear();
    };
    for (size_t i = part; i < ds.size(); i += parts) {
      auto clip = ds.get(i);
      if (!clip) continue;
      ++entries;
      const auto ids = text.encode(clip->caption);
      const bool image = ds.manifest().entries[i].kind == data::MediaKind::Image;
      if (image && clip->frames.size(0) == 1) {
        images.push_back({ids, clip->caption, clip->frames[0]});
        if (static_cast<int64_t>(images.size()) == kImageBatch) flush_images();
        continue;
      }
      flush_images();  // the samples keep the manifest's order
      auto enc = tokenizer::encode_video(model, clip->frames, a->chunk, a->fps);
      auto all = enc.tokens.to(torch::kInt).contiguous();  // [T', H', W']: chunks follow each other
      const int32_t* codes = all.data_ptr<int32_t>();
      for (int64_t len : enc.chunks) {
        add(image ? lm::SampleKind::Image : lm::SampleKind::Video, ids, clip->caption, codes, len, all.size(1),
            all.size(2));
        codes += len * all.size(1) * all.size(2);
      }
    }
    flush_images();
    if (w.size() == 0) fail(a->data, "no entry of part " + a->shard + " could be encoded");
    w.finish();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %lld samples from %lld entries (%lld skipped as unreadable), %lld video tokens, %.1f s\n",
                path.c_str(), static_cast<long long>(w.size()), static_cast<long long>(entries),
                static_cast<long long>(ds.bad()), static_cast<long long>(tokens), s);
#endif
  }));
}

}  // namespace loong::cli
