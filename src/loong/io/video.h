// Video I/O through FFmpeg's libraries (not the ffmpeg program).
//
// Reading gives uint8 frames [T, H, W, 3] (RGB), resampled to a target frame
// rate by presentation timestamps (variable-frame-rate safe), rotated by the
// stream's display matrix, resized (shorter side to `size`, then centre crop to
// size x size) and cut to [start, end). This is exactly the preprocessing
// training uses. Inputs are treated as untrusted: file protocol only, no
// playlist or network demuxers, pixel and frame limits, clear errors.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace loong::video {

// Throws loong::Error when this build has no video support (configured
// without FFmpeg: io/video_unavailable.cpp); a no-op otherwise. For callers
// that would otherwise count every file as unreadable.
void require_video_support();

struct ReadOptions {
  double fps = 0;             // output frame rate; 0 = every decoded frame
  int size = 0;               // 0 = native size; else shorter side -> size, centre crop size x size
  double start = 0;           // seconds from the stream's start
  double end = -1;            // seconds; < 0 = to the end of the stream
  int64_t max_frames = 20000;            // output frames; more is an error
  int64_t max_pixels = 4096LL * 4096;    // coded width x height; more is an error
  int64_t max_decoded_frames = 1000000;  // frames decoded (guards against endless streams)
  bool apply_rotation = true;            // honour display-matrix rotation metadata
  int threads = 0;                       // decoder threads; 0 = FFmpeg's choice
};

// Validates option values; throws loong::Error naming the option.
void validate(const ReadOptions& opts);

struct StreamInfo {
  int index = 0;
  std::string type;   // "video", "audio", "subtitle", "data", ...
  std::string codec;  // "h264", "aac", ... ("none" when unknown)
  int width = 0, height = 0;
  double fps = 0;          // average frame rate (video)
  double duration = 0;     // seconds, 0 when unknown
  int64_t frames = 0;      // video: exact count of packets; else 0
  int rotation = 0;        // degrees clockwise the player applies (0/90/180/270)
  int sample_rate = 0, channels = 0;  // audio
};

struct Info {
  std::string path;
  std::string format;       // demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
  double duration = 0;      // seconds
  int64_t size_bytes = 0;
  int video_stream = -1;    // index of the best video stream, -1 if none
  std::vector<StreamInfo> streams;
  nlohmann::json to_json() const;
};

// Opens the file (with the same hardening as read) and describes it. With
// count_frames, the video stream's packets are counted for an exact frame
// count, which reads the whole file; without it, only the header is read and
// StreamInfo::frames stays 0.
Info probe(const std::string& path, const ReadOptions& limits = {}, bool count_frames = true);

struct Video {
  at::Tensor frames;  // uint8 [T, H, W, 3]
  double fps = 0;     // the output rate (options.fps, or the stream's average rate)
};

// Called once per output frame: frame uint8 [H, W, 3], its time in seconds
// (relative to the stream start). Return false to stop early.
using FrameCallback = std::function<bool(const at::Tensor& frame, double time)>;

// Streams frames through `cb`; returns the number of frames delivered.
int64_t read_frames(const std::string& path, const ReadOptions& opts, const FrameCallback& cb);

// Reads a whole clip into memory. Throws loong::Error if no frame results.
Video read(const std::string& path, const ReadOptions& opts = {});

// First frame of an image (PNG, JPEG, ...) or video: uint8 [H, W, 3].
at::Tensor read_image(const std::string& path, int size = 0, const ReadOptions& limits = {});

struct WriteOptions {
  double fps = 6.5;
  int crf = 18;                     // H.264 quality (0 = lossless, 51 = worst)
  std::string preset = "fast";      // x264 preset
  int rotation = 0;                 // display-matrix rotation to record (clockwise degrees)
  bool variable_frame_rate = false; // use write_at() timestamps instead of frame index / fps
  // MP4/MOV/MKV only: write a fragmented file under streaming_path(PATH)
  // ("OUT.partial.mp4") that is playable up to the last flush(), even if the
  // process is killed; close() renames it to PATH. No encoder look-ahead.
  bool streaming = false;
};

// Where a streaming writer puts its file until close(): "a/b.partial.mp4" for "a/b.mp4".
std::string streaming_path(const std::string& path);
// Whether a streaming writer can write `path`'s format: every one but GIF,
// whose palette needs every frame first.
bool can_stream(const std::string& path);

// Writes H.264 MP4 (yuv420p, plays in browsers) or GIF (by the path's
// extension: .mp4/.mov/.mkv or .gif). The file appears only when close()
// succeeds; until then it lives under a temporary name.
class VideoWriter {
 public:
  VideoWriter(const std::string& path, int width, int height, const WriteOptions& opts = {});
  ~VideoWriter();
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  // frame: uint8 [H, W, 3] or [T, H, W, 3] (any device; copied to CPU).
  void write(const at::Tensor& frames);
  // One frame at an explicit time in seconds (requires variable_frame_rate).
  void write_at(const at::Tensor& frame, double seconds);
  // Streaming writers: everything written so far reaches the file as a
  // complete fragment (no-op otherwise).
  void flush();
  // Flushes the encoder, finishes the container and renames it into place.
  void close();
  int64_t frames_written() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Convenience: write all frames [T, H, W, 3] at fps to path (.mp4 or .gif).
void write(const std::string& path, const at::Tensor& frames, const WriteOptions& opts = {});

// `loong video convert`: decodes `in`, resamples and resizes as `r` says
// (exactly the preprocessing training uses) and writes `out`, a frame at a
// time, so a long or large video never has to fit in memory. The output rate
// is r.fps, else the stream's, else 25.
struct ConvertResult {
  int64_t frames = 0;
  int width = 0, height = 0;
  double fps = 0;
};
ConvertResult convert(const std::string& in, const std::string& out, const ReadOptions& r,
                      const WriteOptions& w = {});

// `loong video sheet`: a PNG grid of `tiles` frames evenly spaced in time
// (`cols` columns; 0: near-square), keeping only the frames shown.
struct SheetResult {
  int64_t shown = 0, total = 0;
};
SheetResult write_sheet(const std::string& in, const std::string& out, const ReadOptions& r, int tiles, int cols = 0);

}  // namespace loong::video
