#include "loong/lm/shard_builder.h"

#include <cstdio>
#include <filesystem>
#include <vector>

#include <torch/torch.h>

#include "loong/core/causal_frames.h"
#include "loong/core/clock.h"
#include "loong/core/error.h"
#include "loong/core/runtime.h"
#include "loong/data/dataset.h"
#include "loong/lm/shards.h"
#include "loong/text/text_tokenizer.h"
#include "loong/tokenizer/checkpoint.h"
#include "loong/tokenizer/tokens.h"

namespace fs = std::filesystem;

namespace loong::lm {

std::pair<int, int> parse_shard(const std::string& s) {
  int i = -1, n = 0;
  char tail = 0;
  if (std::sscanf(s.c_str(), "%d/%d%c", &i, &n, &tail) != 2 || n < 1 || i < 0 || i >= n)
    fail("--shard", "expected i/N with 0 <= i < N (e.g. 0/4), got " + squote(s));
  return {i, n};
}

std::string shard_part_name(int i, int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "part-%05d-of-%05d.loongshard", i, n);
  return buf;
}

ShardBuildResult build_shard(const ShardBuildOptions& o) {
  if (o.parts < 1 || o.part < 0 || o.part >= o.parts)
    fail("--shard", "expected i/N with 0 <= i < N, got " + std::to_string(o.part) + "/" + std::to_string(o.parts));
  const std::string path = (fs::path(o.out) / shard_part_name(o.part, o.parts)).string();
  if (fs::exists(path) && !o.force) fail(path, "already exists; pass --force to replace it");
  auto text = text::TextTokenizer::load(o.text);
  auto model = tokenizer::load_model(o.tokenizer, parse_device(o.device));
  const int tf = model->config.temporal_factor();
  if (!is_causal_length(o.chunk, tf))
    fail("--chunk", "expected 1 + " + std::to_string(tf) + "k frames, got " + std::to_string(o.chunk));

  data::ClipOptions co;
  co.read.fps = o.fps;
  co.read.size = model->config.image_size;
  data::ClipDataset ds(data::load_manifest(o.data), co);
  ShardWriter w(path, text.vocab_size(), model->config.codebook_size);
  int64_t entries = 0, tokens = 0;
  const auto t0 = Clock::now();
  auto add = [&](SampleKind kind, const std::vector<int32_t>& ids, const std::string& caption,
                 const int32_t* codes, int64_t frames, int64_t height, int64_t width) {
    ShardSample s;
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
      add(SampleKind::Image, p.ids, p.caption, codes, 1, all.size(1), all.size(2));
      codes += per_frame;
    }
    images.clear();
  };
  for (size_t i = static_cast<size_t>(o.part); i < ds.size(); i += static_cast<size_t>(o.parts)) {
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
    auto enc = tokenizer::encode_video(model, clip->frames, o.chunk, o.fps);
    auto all = enc.tokens.to(torch::kInt).contiguous();  // [T', H', W']: chunks follow each other
    const int32_t* codes = all.data_ptr<int32_t>();
    for (int64_t len : enc.chunks) {
      add(image ? SampleKind::Image : SampleKind::Video, ids, clip->caption, codes, len, all.size(1),
          all.size(2));
      codes += len * all.size(1) * all.size(2);
    }
  }
  flush_images();
  if (w.size() == 0) fail(o.data, "no entry of part " + std::to_string(o.part) + "/" + std::to_string(o.parts) + " could be encoded");
  w.finish();
  ShardBuildResult r;
  r.path = path;
  r.samples = static_cast<int64_t>(w.size());
  r.entries = entries;
  r.unreadable = static_cast<int64_t>(ds.bad());
  r.tokens = tokens;
  r.seconds = seconds_since(t0);
  return r;
}

}  // namespace loong::lm
