// Writing a moving-fashion dataset to disk (needs FFmpeg for the MP4s).
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/data/moving_fashion.h"
#include "loong/io/image.h"
#include "loong/io/video.h"

namespace fs = std::filesystem;

namespace loong::data {

namespace {

std::string part_file(const std::string& out_dir, int part, int parts) {
  char name[64];
  std::snprintf(name, sizeof name, "parts/part-%05d-of-%05d.json", part, parts);
  return (fs::path(out_dir) / name).string();
}

// The first option in which two dataset.json contents differ, for the error.
std::string first_difference(const nlohmann::json& a, const nlohmann::json& b) {
  for (const auto& [k, v] : a.items())
    if (!b.contains(k) || b[k] != v) return k + " " + v.dump() + " here, " + (b.contains(k) ? b[k].dump() : "absent") + " there";
  return "the options";
}

// The entries of part `path`, checked against this dataset's options: a part
// written with others is refused, or (`strict` false: every part is being
// written anew, with --force) read as absent.
std::optional<nlohmann::json> read_part(const std::string& path, const nlohmann::json& info, int parts,
                                        bool strict = true) {
  nlohmann::json j = read_json_file(path);
  if (!j.is_object() || !j.contains("dataset") || !j["videos"].is_array() || !j["images"].is_array() ||
      j.value("parts", 0) != parts)
    fail(path, "is not a moving-fashion part of " + std::to_string(parts) + " (expected dataset, parts, videos, images)");
  if (j["dataset"] == info) return j;
  if (!strict) return std::nullopt;
  fail(path, "was written with other options (" + first_difference(info, j["dataset"]) +
                 "); use the same options for every part, or --force on every part to write them anew");
}

// manifest.jsonl and images.jsonl from the entries of parts {videos,
// images} (one process: one part), entry i being part i % N's (i / N)-th.
void write_manifests(const MovingFashionOptions& o, const std::string& out_dir, const std::vector<nlohmann::json>& p) {
  const int parts = static_cast<int>(p.size());
  auto interleave = [&](const char* key, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) {
      const auto& entries = p[i % parts][key];
      if (static_cast<size_t>(i / parts) >= entries.size())
        fail(part_file(out_dir, i % parts, parts), std::string("lacks ") + key + " entry " + std::to_string(i));
      out += entries[i / parts].dump() + "\n";
    }
    return out;
  };
  if (o.videos > 0) write_file_atomic((fs::path(out_dir) / "manifest.jsonl").string(), interleave("videos", o.videos));
  if (o.images > 0) write_file_atomic((fs::path(out_dir) / "images.jsonl").string(), interleave("images", o.images));
}

// manifest.jsonl and images.jsonl from every part's entries, in the order one
// process writes them (entry i is part i % parts's (i / parts)-th). Returns the
// number of parts present; merges only when all are.
int merge_parts(const MovingFashionOptions& o, const std::string& out_dir, int parts, const nlohmann::json& info,
                bool strict) {
  std::vector<nlohmann::json> p;
  for (int k = 0; k < parts; ++k) {
    const std::string path = part_file(out_dir, k, parts);
    if (fs::exists(path))
      if (auto j = read_part(path, info, parts, strict)) p.push_back(std::move(*j));
  }
  if (static_cast<int>(p.size()) < parts) return static_cast<int>(p.size());
  write_manifests(o, out_dir, p);
  return parts;
}

nlohmann::json dataset_info(const MovingFashionOptions& o) {
  nlohmann::json info = {
      {"generator", "moving-fashion"}, {"version", 1}, {"videos", o.videos}, {"images", o.images},
      {"seconds", o.seconds}, {"frames_per_video", frame_count(o)}, {"size", o.size}, {"fps", o.fps},
      {"seed", o.seed}, {"split", o.split}, {"two_items", o.two_items}, {"scene_changes", o.scene_changes}};
  for (const auto& c : kItemColours) info["colours"].push_back(c.name);
  for (const auto& c : kBackgrounds) info["backgrounds"].push_back(c.name);
  for (const auto* c : kFashionClassNames) info["classes"].push_back(c);
  for (const auto* d : kDirections) info["directions"].push_back(d);
  info["speeds"] = {"slow", "fast"};
  info["world"] = world_json(o);
  return info;
}

}  // namespace

PartResult write_moving_fashion_part(const MovingFashionOptions& o, const std::string& out_dir, int part, int parts,
                                     bool verbose, bool overwrite) {
  video::require_video_support();  // before any folder is made
  validate(o);
  if (parts < 1 || part < 0 || part >= parts)
    fail("--shard", "expected part i of N with 0 <= i < N, got " + std::to_string(part) + " of " + std::to_string(parts));
  std::error_code ec;
  if (fs::exists(out_dir, ec) && !fs::is_directory(out_dir, ec)) fail(out_dir, "exists and is not a folder");
  PartResult r;
  r.info = dataset_info(o);
  const std::string own = part_file(out_dir, part, parts);
  if (parts == 1) {
    if (!overwrite && fs::is_directory(out_dir, ec) && !fs::is_empty(out_dir, ec))
      fail(out_dir, "folder is not empty; choose a new folder or pass --force to write over it");
  } else if (!overwrite) {
    // The folder is shared by the parts: refuse only what would be lost or mixed.
    if (fs::exists(fs::path(out_dir) / "manifest.jsonl"))
      fail(out_dir, "already holds a finished dataset (manifest.jsonl); choose a new folder or pass --force to write over it");
    // Parts written with other options are refused before anything is rendered.
    const int present = merge_parts(o, out_dir, parts, r.info, true);
    if (fs::exists(own)) {
      if (verbose) std::fprintf(stderr, "part %d of %d: already written (%s)\n", part, parts, own.c_str());
      r.parts_present = present;
      r.merged = present == parts;
      return r;
    }
  }
  const FashionMnist fm = load_fashion_mnist(o.split, o.mnist_dir);
  make_dirs(out_dir);
  char name[32];
  nlohmann::json videos = nlohmann::json::array(), images = nlohmann::json::array();
  std::vector<at::Tensor> sheet_rows;
  constexpr int kSheetCols = 8, kSheetRows = 8;

  for (int i = part; i < o.videos; i += parts) {
    std::snprintf(name, sizeof(name), "%06d", i);
    const std::string rel = std::string("videos/") + name;
    Sample s = make_video(fm, o, i);
    video::WriteOptions wo;
    wo.fps = o.fps;
    video::write((fs::path(out_dir) / (rel + ".mp4")).string(), s.frames, wo);
    write_json_file((fs::path(out_dir) / (rel + ".json")).string(), s.truth);
    videos.push_back({{"video", rel + ".mp4"}, {"caption", s.caption}, {"truth", rel + ".json"}});
    if (static_cast<int>(sheet_rows.size()) < kSheetRows * kSheetCols)
      for (int64_t f : image::spread_indices(s.frames.size(0), kSheetCols)) sheet_rows.push_back(s.frames[f]);
    if (verbose) std::fprintf(stderr, "video %d/%d: %s\n", i + 1, o.videos, s.caption.c_str());
  }
  for (int i = part; i < o.images; i += parts) {
    std::snprintf(name, sizeof(name), "%06d", i);
    const std::string rel = std::string("images/") + name;
    Sample s = make_image(fm, o, i);
    image::write_png((fs::path(out_dir) / (rel + ".png")).string(), s.frames[0]);
    write_json_file((fs::path(out_dir) / (rel + ".json")).string(), s.truth);
    images.push_back({{"image", rel + ".png"}, {"caption", s.caption}, {"truth", rel + ".json"}});
    if (o.videos == 0 && static_cast<int>(sheet_rows.size()) < kSheetRows * kSheetCols)
      sheet_rows.push_back(s.frames[0]);
    if (verbose && (i + 1) % 100 == 0) std::fprintf(stderr, "image %d/%d\n", i + 1, o.images);
  }
  // The contact sheet: one row per video (8 frames spread over it), or a grid of stills.
  if (part == 0) image::write_png((fs::path(out_dir) / "sheet.png").string(), image::grid(sheet_rows, o.videos > 0 ? kSheetCols : 0));
  write_json_file((fs::path(out_dir) / "dataset.json").string(), r.info);
  // Manifests last: a run that dies midway never leaves one pointing at missing files.
  if (parts == 1) {
    write_manifests(o, out_dir, {nlohmann::json{{"videos", videos}, {"images", images}}});
    r.merged = true;
    return r;
  }
  make_dirs((fs::path(out_dir) / "parts").string());
  write_json_file(own, {{"dataset", r.info}, {"part", part}, {"parts", parts}, {"videos", videos}, {"images", images}});
  r.parts_present = merge_parts(o, out_dir, parts, r.info, !overwrite);
  r.merged = r.parts_present == parts;
  return r;
}

nlohmann::json write_moving_fashion(const MovingFashionOptions& o, const std::string& out_dir, bool verbose,
                                    bool overwrite) {
  return write_moving_fashion_part(o, out_dir, 0, 1, verbose, overwrite).info;
}

}  // namespace loong::data
