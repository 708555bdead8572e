#include "loong/io/ffmpeg_util.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>

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

// The tallies alive now: a decoder's `opaque` counts only when it is one.
std::mutex g_tallies_m;
std::set<const ErrorTally*> g_tallies;

void log_callback(void* avcl, int level, const char* fmt, va_list vl) {
  if (level <= AV_LOG_ERROR && avcl) {
    const AVClass* c = *static_cast<const AVClass* const*>(avcl);
    if (c && c->class_name && std::strcmp(c->class_name, "AVCodecContext") == 0) {
      void* opaque = static_cast<AVCodecContext*>(avcl)->opaque;
      std::lock_guard<std::mutex> lock(g_tallies_m);  // the tally cannot go away while we count
      auto it = g_tallies.find(static_cast<const ErrorTally*>(opaque));
      if (it != g_tallies.end()) {
        auto* t = const_cast<ErrorTally*>(*it);
        if (t->errors++ == 0) {
          char line[256];
          va_list copy;
          va_copy(copy, vl);
          std::vsnprintf(line, sizeof line, fmt, copy);
          va_end(copy);
          std::string s(line);
          while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
          std::lock_guard<std::mutex> tl(t->m);
          t->first = s;
        }
      }
    }
  }
  av_log_default_callback(avcl, level, fmt, vl);  // prints only at the level set below
}

}  // namespace

ErrorTally::ErrorTally() {
  std::lock_guard<std::mutex> lock(g_tallies_m);
  g_tallies.insert(this);
}

ErrorTally::~ErrorTally() {
  std::lock_guard<std::mutex> lock(g_tallies_m);
  g_tallies.erase(this);
}

void quiet_ffmpeg_log() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("LOONG_FFMPEG_LOG");
    av_log_set_level(env && *env == '1' ? AV_LOG_INFO : AV_LOG_QUIET);
    av_log_set_callback(log_callback);
  });
}

}  // namespace loong::video::detail
