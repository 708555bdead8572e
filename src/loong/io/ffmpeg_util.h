// Internal: RAII wrappers and error helpers for FFmpeg's C API.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavformat/avformat.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

namespace loong::video::detail {

std::string av_error(int code);

// Throws loong::Error "<path>: <what>: <FFmpeg's message>" when code < 0.
void check(int code, const std::string& path, const std::string& what);

struct FrameDeleter { void operator()(AVFrame* f) const { av_frame_free(&f); } };
struct PacketDeleter { void operator()(AVPacket* p) const { av_packet_free(&p); } };
struct CodecCtxDeleter { void operator()(AVCodecContext* c) const { avcodec_free_context(&c); } };
struct SwsDeleter { void operator()(SwsContext* s) const { sws_freeContext(s); } };
struct GraphDeleter { void operator()(AVFilterGraph* g) const { avfilter_graph_free(&g); } };

using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using CodecCtxPtr = std::unique_ptr<AVCodecContext, CodecCtxDeleter>;
using SwsPtr = std::unique_ptr<SwsContext, SwsDeleter>;
using GraphPtr = std::unique_ptr<AVFilterGraph, GraphDeleter>;

FramePtr make_frame();
PacketPtr make_packet();

// Routes FFmpeg's own log to stderr only for errors worse than `AV_LOG_FATAL`
// unless LOONG_FFMPEG_LOG=1; we report problems ourselves.
void quiet_ffmpeg_log();

// The errors FFmpeg logs for one decoder, which is how its own program tells
// a broken file from a clean one (many decoders conceal damage without
// returning an error). A decoder context whose `opaque` points to a live tally
// counts into it (frame threads copy `opaque` into their own contexts); an
// `opaque` that is not a registered tally (someone else's data) is never read.
// Demuxer errors are not counted: they may be about an audio stream.
struct ErrorTally {
  ErrorTally();
  ~ErrorTally();
  ErrorTally(const ErrorTally&) = delete;
  ErrorTally& operator=(const ErrorTally&) = delete;
  std::atomic<int64_t> errors{0};
  std::mutex m;
  std::string first;  // the first message, for the error we report
};

}  // namespace loong::video::detail
