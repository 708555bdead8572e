// Writing a moving-fashion dataset to disk (needs FFmpeg for the MP4s).
#include <cstdio>
#include <filesystem>

#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/data/moving_fashion.h"
#include "loong/io/image.h"
#include "loong/io/video.h"

namespace fs = std::filesystem;

namespace loong::data {

nlohmann::json write_moving_fashion(const MovingFashionOptions& o, const std::string& out_dir,
                                    bool verbose, bool overwrite) {
  video::require_video_support();  // before any folder is made
  validate(o);
  std::error_code ec;
  if (fs::exists(out_dir, ec) && !fs::is_directory(out_dir, ec)) fail(out_dir, "exists and is not a folder");
  if (!overwrite && fs::is_directory(out_dir, ec) && !fs::is_empty(out_dir, ec))
    fail(out_dir, "folder is not empty; choose a new folder or pass --force to write over it");
  const FashionMnist fm = load_fashion_mnist(o.split, o.mnist_dir);
  make_dirs(out_dir);
  char name[32];
  std::string videos_jsonl, images_jsonl;
  std::vector<at::Tensor> sheet_rows;
  constexpr int kSheetCols = 8, kSheetRows = 8;

  for (int i = 0; i < o.videos; ++i) {
    std::snprintf(name, sizeof(name), "%06d", i);
    const std::string rel = std::string("videos/") + name;
    Sample s = make_video(fm, o, i);
    video::WriteOptions wo;
    wo.fps = o.fps;
    video::write((fs::path(out_dir) / (rel + ".mp4")).string(), s.frames, wo);
    write_json_file((fs::path(out_dir) / (rel + ".json")).string(), s.truth);
    videos_jsonl += nlohmann::json{{"video", rel + ".mp4"}, {"caption", s.caption}, {"truth", rel + ".json"}}.dump() + "\n";
    if (static_cast<int>(sheet_rows.size()) < kSheetRows * kSheetCols)
      for (int64_t f : image::spread_indices(s.frames.size(0), kSheetCols)) sheet_rows.push_back(s.frames[f]);
    if (verbose) std::fprintf(stderr, "video %d/%d: %s\n", i + 1, o.videos, s.caption.c_str());
  }
  for (int i = 0; i < o.images; ++i) {
    std::snprintf(name, sizeof(name), "%06d", i);
    const std::string rel = std::string("images/") + name;
    Sample s = make_image(fm, o, i);
    image::write_png((fs::path(out_dir) / (rel + ".png")).string(), s.frames[0]);
    write_json_file((fs::path(out_dir) / (rel + ".json")).string(), s.truth);
    images_jsonl += nlohmann::json{{"image", rel + ".png"}, {"caption", s.caption}, {"truth", rel + ".json"}}.dump() + "\n";
    if (o.videos == 0 && static_cast<int>(sheet_rows.size()) < kSheetRows * kSheetCols)
      sheet_rows.push_back(s.frames[0]);
    if (verbose && (i + 1) % 100 == 0) std::fprintf(stderr, "image %d/%d\n", i + 1, o.images);
  }
  // Manifests last: a run that dies midway never leaves one pointing at missing files.
  if (o.videos > 0) write_file_atomic((fs::path(out_dir) / "manifest.jsonl").string(), videos_jsonl);
  if (o.images > 0) write_file_atomic((fs::path(out_dir) / "images.jsonl").string(), images_jsonl);
  // The contact sheet: one row per video (8 frames spread over it), or a grid of stills.
  int cols = o.videos > 0 ? kSheetCols : 0;
  const std::string sheet = (fs::path(out_dir) / "sheet.png").string();
  image::write_png(sheet, image::grid(sheet_rows, cols));

  nlohmann::json info = {
      {"generator", "moving-fashion"}, {"version", 1}, {"videos", o.videos}, {"images", o.images},
      {"seconds", o.seconds}, {"frames_per_video", frame_count(o)}, {"size", o.size}, {"fps", o.fps},
      {"seed", o.seed}, {"split", o.split}, {"two_items", o.two_items}, {"scene_changes", o.scene_changes}};
  for (const auto& c : kItemColours) info["colours"].push_back(c.name);
  for (const auto& c : kBackgrounds) info["backgrounds"].push_back(c.name);
  for (const auto* c : kFashionClassNames) info["classes"].push_back(c);
  for (const auto* d : kDirections) info["directions"].push_back(d);
  info["speeds"] = {"slow", "fast"};
  write_json_file((fs::path(out_dir) / "dataset.json").string(), info);
  return info;
}

}  // namespace loong::data
