// io/video.h in a build without FFmpeg (-DLOONG_WITH_FFMPEG=OFF, e.g. the
// GPU machines): every call that reads or writes a video file throws one
// clear error, so that the library, the CLI and everything above them build
// and link the same way with or without it, and no caller needs its own guard.
#include "loong/io/video.h"

#include "loong/core/error.h"

namespace loong::video {

namespace {
[[noreturn]] void unavailable(const std::string& path) {
  fail(path, "this build has no FFmpeg support, so it cannot read or write video files (configure with "
             "-DLOONG_WITH_FFMPEG=ON)");
}
}  // namespace

void require_video_support() {
  throw Error("this build has no FFmpeg support, so it cannot read or write video files (configure with "
              "-DLOONG_WITH_FFMPEG=ON)");
}

Info probe(const std::string& path, const ReadOptions&, bool) { unavailable(path); }
int64_t read_frames(const std::string& path, const ReadOptions&, const FrameCallback&) { unavailable(path); }
Video read(const std::string& path, const ReadOptions&) { unavailable(path); }
at::Tensor read_image(const std::string& path, int, const ReadOptions&) { unavailable(path); }

struct VideoWriter::Impl {};
VideoWriter::VideoWriter(const std::string& path, int, int, const WriteOptions&) { unavailable(path); }
VideoWriter::~VideoWriter() = default;
void VideoWriter::write(const at::Tensor&) {}
void VideoWriter::write_at(const at::Tensor&, double) {}
void VideoWriter::flush() {}
void VideoWriter::close() {}
int64_t VideoWriter::frames_written() const { return 0; }

void write(const std::string& path, const at::Tensor&, const WriteOptions&) { unavailable(path); }

}  // namespace loong::video
