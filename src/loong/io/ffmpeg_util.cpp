#include "loong/io/ffmpeg_util.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

namespace {

ErrorTally* tally_of(void* avcl) {
  if (!avcl) return nullptr;
  const AVClass* c = *static_cast<const AVClass* const*>(avcl);
  if (!c || !c->class_name) return nullptr;
  void* opaque = nullptr;
  if (std::strcmp(c->class_name, "AVCodecContext") == 0) opaque = static_cast<AVCodecContext*>(avcl)->opaque;
  else if (std::strcmp(c->class_name, "AVFormatContext") == 0) opaque = static_cast<AVFormatContext*>(avcl)->opaque;
  auto* t = static_cast<ErrorTally*>(opaque);
  return t && t->magic == ErrorTally::kMagic ? t : nullptr;
}

void log_callback(void* avcl, int level, const char* fmt, va_list vl) {
  if (level <= AV_LOG_ERROR) {
    if (ErrorTally* t = tally_of(avcl)) {
      if (t->errors++ == 0) {
        char line[256];
        va_list copy;
        va_copy(copy, vl);
        std::vsnprintf(line, sizeof line, fmt, copy);
        va_end(copy);
        std::string s(line);
        while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
        std::lock_guard<std::mutex> lock(t->m);
        t->first = s;
      }
    }
  }
  av_log_default_callback(avcl, level, fmt, vl);  // prints only at the level set below
}

}  // namespace

void quiet_ffmpeg_log() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("LOONG_FFMPEG_LOG");
    av_log_set_level(env && *env == '1' ? AV_LOG_INFO : AV_LOG_QUIET);
    av_log_set_callback(log_callback);
  });
}

}  // namespace loong::video::detail
