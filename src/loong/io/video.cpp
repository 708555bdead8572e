// The parts of io/video.h built on its reader and writer: option checks, the
// probe's JSON, file names, conversion and contact sheets. The reader and
// writer are video_reader.cpp and video_writer.cpp with FFmpeg, or
// video_unavailable.cpp without it.
#include "loong/io/video.h"

#include <cctype>
#include <filesystem>
#include <memory>
#include <vector>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/io/image.h"

namespace fs = std::filesystem;

namespace loong::video {

void validate(const ReadOptions& o) {
  if (!(o.fps >= 0) || o.fps > 1000) fail("--fps", "expected a number in [0, 1000], got " + std::to_string(o.fps));
  if (o.size < 0 || o.size > 16384) fail("--size", "expected 0 (native) or a size in [1, 16384], got " + std::to_string(o.size));
  if (!(o.start >= 0)) fail("--start", "expected a time >= 0 seconds, got " + std::to_string(o.start));
  if (o.end >= 0 && o.end <= o.start)
    fail("--end", "expected an end time after start (" + std::to_string(o.start) + " s), got " + std::to_string(o.end));
  if (o.max_frames <= 0) fail("--max-frames", "expected a positive frame limit");
  if (o.max_pixels <= 0) fail("--max-pixels", "expected a positive pixel limit");
}

nlohmann::json Info::to_json() const {
  nlohmann::json j = {{"path", path}, {"format", format}, {"duration", duration},
                      {"size_bytes", size_bytes}, {"video_stream", video_stream}};
  j["streams"] = nlohmann::json::array();
  for (const auto& s : streams) {
    nlohmann::json e = {{"index", s.index}, {"type", s.type}, {"codec", s.codec}};
    if (s.type == "video") {
      e["width"] = s.width;
      e["height"] = s.height;
      e["fps"] = s.fps;
      e["frames"] = s.frames;
      e["rotation"] = s.rotation;
    } else if (s.type == "audio") {
      e["sample_rate"] = s.sample_rate;
      e["channels"] = s.channels;
    }
    e["duration"] = s.duration;
    j["streams"].push_back(e);
  }
  return j;
}

std::string streaming_path(const std::string& path) {
  fs::path p(path);
  return (p.parent_path() / (p.stem().string() + ".partial" + p.extension().string())).string();
}

bool can_stream(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext != ".gif";
}


ConvertResult convert(const std::string& in, const std::string& out, const ReadOptions& r,
                      const WriteOptions& write) {
  // Stream: frames go from the reader to the writer one at a time, so a long
  // or large video never has to fit in memory.
  validate(r);
  require_distinct_paths({{"output", out}, {"output's partial file", write.streaming ? streaming_path(out) : ""}},
                         {{"input", in}});
  const Info info = probe(in, r, /*count_frames=*/false);  // header only
  // Without a video stream, read_frames below says exactly what is wrong.
  const double native = info.video_stream >= 0 ? info.streams[info.video_stream].fps : 0;
  WriteOptions w = write;
  w.fps = r.fps > 0 ? r.fps : (native > 0 ? native : 25);
  std::unique_ptr<VideoWriter> writer;
  int64_t n = 0;
  int width = 0, height = 0;
  read_frames(in, r, [&](const at::Tensor& f, double) {
    if (!writer) {
      width = static_cast<int>(f.size(1));
      height = static_cast<int>(f.size(0));
      writer = std::make_unique<VideoWriter>(out, width, height, w);
    }
    writer->write(f);
    ++n;
    return true;
  });
  if (!writer) fail(in, "no frames in the requested range");
  writer->close();
  return {n, width, height, w.fps};
}

SheetResult write_sheet(const std::string& in, const std::string& out, const ReadOptions& r, int tiles, int cols) {
  // Keep only the frames shown: the first at or after each of `tiles`
  // evenly spaced times over the clip's duration.
  validate(r);
  require_distinct_paths({{"output", out}}, {{"input", in}});
  const Info info = probe(in, r, /*count_frames=*/false);  // header only
  const double start = r.start;
  double end = info.duration > 0 ? info.duration : 0;
  if (r.end >= 0 && (end <= 0 || r.end < end)) end = r.end;
  std::vector<at::Tensor> shown, all;
  int64_t total = 0;
  read_frames(in, r, [&](const at::Tensor& f, double t) {
    ++total;
    if (end <= start) {  // unknown duration: keep everything (bounded by --max-frames)
      all.push_back(f);
      return true;
    }
    const double next = start + (end - start) * static_cast<double>(shown.size()) / tiles;
    if (static_cast<int>(shown.size()) < tiles && t + 1e-6 >= next) shown.push_back(f);
    return true;
  });
  if (total == 0) fail(in, "no frames in the requested range");
  if (!all.empty()) {
    for (int64_t i : image::spread_indices(static_cast<int64_t>(all.size()), tiles)) shown.push_back(all[i]);
  }
  image::write_png(out, image::grid(shown, cols));
  return {static_cast<int64_t>(shown.size()), total};
}

}  // namespace loong::video
