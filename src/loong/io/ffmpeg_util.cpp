#include "loong/io/ffmpeg_util.h"

#include <cstdlib>
#include <mutex>

#include "loong/core/error.h"

namespace loong::video::detail {

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

void check(int code, const std::string& path, const std::string& what) {
  if (code < 0) fail(path, what + ": " + av_error(code));
}

FramePtr make_frame() {
  AVFrame* f = av_frame_alloc();
  if (!f) throw Error("out of memory allocating an AVFrame");
  return FramePtr(f);
}

PacketPtr make_packet() {
  AVPacket* p = av_packet_alloc();
  if (!p) throw Error("out of memory allocating an AVPacket");
  return PacketPtr(p);
}

void quiet_ffmpeg_log() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("LOONG_FFMPEG_LOG");
    av_log_set_level(env && *env == '1' ? AV_LOG_INFO : AV_LOG_QUIET);
  });
}

}  // namespace loong::video::detail
