// Video reading through libavformat/libavcodec/libswscale.
//
// Hardening for untrusted files:
//  - the path is opened as "file:<path>" with protocol_whitelist=file, so no
//    network protocol can be reached even from inside a container;
//  - demuxers that open other resources (playlists, concat lists, manifests,
//    SDP/RTSP) are left out of format_whitelist;
//  - coded and decoded frame sizes are checked against max_pixels, output
//    frames against max_frames, decoded frames against max_decoded_frames;
//  - empty, truncated, non-video, audio-only, zero-frame and unsupported-codec
//    inputs raise loong::Error naming the file.
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <set>

#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/io/ffmpeg_util.h"
#include "loong/io/video.h"

extern "C" {
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
}

namespace fs = std::filesystem;

namespace loong::video {
using namespace detail;

namespace {

// Demuxers that read other files or the network by design.
const std::set<std::string> kBlockedDemuxers = {
    "hls", "applehttp", "concat", "dash", "sdp", "rtsp", "rtp", "sap", "imf",
    "webm_dash_manifest", "ffmetadata", "tedcaptions", "libsmbclient", "srtp"};

const std::string& demuxer_whitelist() {
  static const std::string list = [] {
    std::string s;
    void* it = nullptr;
    while (const AVInputFormat* f = av_demuxer_iterate(&it)) {
      std::string name = f->name;
      bool blocked = false;
      size_t pos = 0;
      while (pos <= name.size()) {  // names can be lists: "mov,mp4,m4a,..."
        size_t comma = name.find(',', pos);
        if (comma == std::string::npos) comma = name.size();
        if (kBlockedDemuxers.count(name.substr(pos, comma - pos))) blocked = true;
        pos = comma + 1;
      }
      if (!blocked) s += (s.empty() ? "" : ",") + name;
    }
    return s;
  }();
  return list;
}

// The name of the demuxer FFmpeg would pick for this file if it is one we
// refuse, else "". Only used to explain a failed open.
std::string blocked_format(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return "";
  std::vector<unsigned char> buf(4096 + AVPROBE_PADDING_SIZE, 0);
  const size_t n = std::fread(buf.data(), 1, 4096, f);
  std::fclose(f);
  AVProbeData pd{};
  pd.filename = path.c_str();
  pd.buf = buf.data();
  pd.buf_size = static_cast<int>(n);
  const AVInputFormat* fmt = av_probe_input_format(&pd, 1);
  if (!fmt) return "";
  const std::string name = fmt->name;
  for (const auto& b : kBlockedDemuxers)
    if (name == b || name.rfind(b + ",", 0) == 0) return name;
  return "";
}

// Clockwise rotation the player applies, from the display matrix (0/90/180/270).
int stream_rotation(const AVStream* st) {
  const uint8_t* sd = nullptr;
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 30, 100)
  const AVPacketSideData* psd = av_packet_side_data_get(
      st->codecpar->coded_side_data, st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
  if (psd) sd = psd->data;
#else
  sd = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, nullptr);
#endif
  if (!sd) return 0;
  double theta = -av_display_rotation_get(reinterpret_cast<const int32_t*>(sd));
  if (std::isnan(theta)) return 0;
  int r = static_cast<int>(std::lround(theta / 90.0)) * 90 % 360;
  return r < 0 ? r + 360 : r;
}

double frame_duration_ticks(const AVFrame* f) {
#if LIBAVUTIL_VERSION_MAJOR >= 58
  return static_cast<double>(f->duration);
#else
  return static_cast<double>(f->pkt_duration);
#endif
}

// An opened, validated input file.
class Input {
 public:
  Input(const std::string& path, const ReadOptions& limits) : path_(path) {
    quiet_ffmpeg_log();
    std::error_code ec;
    if (fs::is_directory(path, ec)) fail(path, "expected a video file, got a folder");
    require_regular_file(path);  // a pipe would block FFmpeg's open forever
    if (fs::file_size(path, ec) == 0) fail(path, "empty file (0 bytes)");
    fmt_ = avformat_alloc_context();
    if (!fmt_) throw Error("out of memory");
    AVDictionary* o = nullptr;
    av_dict_set(&o, "protocol_whitelist", "file", 0);
    av_dict_set(&o, "format_whitelist", demuxer_whitelist().c_str(), 0);
    int r = avformat_open_input(&fmt_, ("file:" + path).c_str(), nullptr, &o);
    av_dict_free(&o);
    if (r < 0) {
      fmt_ = nullptr;  // freed by avformat_open_input
      const std::string blocked = blocked_format(path);
      if (!blocked.empty())
        fail(path, "format " + squote(blocked) +
                       " is refused: playlists, concat lists and stream descriptions open other files "
                       "or the network; give the media file itself");
      if (r == AVERROR_INVALIDDATA)
        fail(path, "not a video or image file FFmpeg can read (unknown format, or corrupt/truncated)");
      fail(path, "cannot open: " + av_error(r));
    }
    r = avformat_find_stream_info(fmt_, nullptr);
    if (r < 0) {
      avformat_close_input(&fmt_);  // a throwing constructor runs no destructor (found by fuzzing: a leak per file)
      fail(path, "cannot read stream information (corrupt or truncated?): " + av_error(r));
    }
  }
  ~Input() {
    if (fmt_) avformat_close_input(&fmt_);
  }
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;

  AVFormatContext* fmt() const { return fmt_; }
  const std::string& path() const { return path_; }

  // The main video stream (not cover art), or -1.
  int video_stream() const {
    int best = av_find_best_stream(fmt_, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    if (best >= 0 && !(fmt_->streams[best]->disposition & AV_DISPOSITION_ATTACHED_PIC)) return best;
    for (unsigned i = 0; i < fmt_->nb_streams; ++i) {
      const AVStream* st = fmt_->streams[i];
      if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
          !(st->disposition & AV_DISPOSITION_ATTACHED_PIC))
        return static_cast<int>(i);
    }
    return -1;
  }

  int require_video_stream() const {
    int v = video_stream();
    if (v >= 0) return v;
    for (unsigned i = 0; i < fmt_->nb_streams; ++i)
      if (fmt_->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO)
        fail(path_, "no video stream (the file has audio only)");
    fail(path_, "no video stream");
  }

 private:
  std::string path_;
  AVFormatContext* fmt_ = nullptr;
};

// The average frame rate, or the exact nominal one (r_frame_rate) when the two
// agree within 2% (the average is skewed by a missing last-frame duration).
double stream_fps(const AVStream* st) {
  const double avg = av_q2d(st->avg_frame_rate), nominal = av_q2d(st->r_frame_rate);
  const bool avg_ok = avg > 0 && std::isfinite(avg), nominal_ok = nominal > 0 && std::isfinite(nominal);
  if (avg_ok && nominal_ok && std::abs(avg - nominal) <= 0.02 * nominal) return nominal;
  if (avg_ok) return avg;
  return nominal_ok ? nominal : 0;
}

// Converts decoded frames to uint8 RGB [H, W, 3]: scale (shorter side to
// size), centre crop, rotate.
class Converter {
 public:
  Converter(int size, int rotation) : size_(size), rotation_(rotation) {}

  at::Tensor operator()(const AVFrame* f) {
    const int w = f->width, h = f->height;
    int dw = w, dh = h;
    if (size_ > 0) {
      const double scale = static_cast<double>(size_) / std::min(w, h);
      dw = std::max(size_, static_cast<int>(std::lround(w * scale)));
      dh = std::max(size_, static_cast<int>(std::lround(h * scale)));
    } else {
      // A stream may change its frame size midway (a new SPS in a broadcast or
      // a spliced file); every frame keeps the first one's, as in FFmpeg's program.
      if (first_w_ == 0) first_w_ = w, first_h_ = h;
      dw = first_w_, dh = first_h_;
    }
    const auto fmt = static_cast<AVPixelFormat>(f->format);
    const int flags = (dw < w || dh < h) ? SWS_AREA : SWS_BICUBIC;
    SwsContext* s = sws_getCachedContext(sws_.release(), w, h, fmt, dw, dh, AV_PIX_FMT_RGB24,
                                         flags, nullptr, nullptr, nullptr);
    sws_.reset(s);
    if (!s) throw Error("cannot convert pixel format " + std::string(av_get_pix_fmt_name(fmt)));
    // Colour tables are rebuilt on every call, so set them only when the
    // context or the source's colour description changes.
    const std::array<int, 6> key = {w, h, static_cast<int>(fmt), f->colorspace, f->color_range, dw * 65536 + dh};
    const bool fresh = s != configured_ || key != key_;
    configured_ = s;
    key_ = key;
    const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(fmt);
    if (fresh && desc && !(desc->flags & AV_PIX_FMT_FLAG_RGB)) {
      const int cs = f->colorspace == AVCOL_SPC_BT709 ? SWS_CS_ITU709 : SWS_CS_DEFAULT;
      const int src_full = f->color_range == AVCOL_RANGE_JPEG ||
                           fmt == AV_PIX_FMT_YUVJ420P || fmt == AV_PIX_FMT_YUVJ422P ||
                           fmt == AV_PIX_FMT_YUVJ444P;
      sws_setColorspaceDetails(s, sws_getCoefficients(cs), src_full,
                               sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
    }
    // A little slack at the end: swscale's SIMD paths may write past the row.
    scratch_.resize(static_cast<size_t>(dh) * dw * 3 + 64);
    uint8_t* planes[4] = {scratch_.data(), nullptr, nullptr, nullptr};
    int dst_stride[4] = {dw * 3, 0, 0, 0};
    sws_scale(s, f->data, f->linesize, 0, h, planes, dst_stride);
    // Crop and rotate with plain loops: LibTorch's OpenMP workers would spin
    // against FFmpeg's decoder threads here (20% slower on 2 cores, measured).
    const int ch = size_ > 0 ? size_ : dh, cw = size_ > 0 ? size_ : dw;
    const int y0 = (dh - ch) / 2, x0 = (dw - cw) / 2;
    const uint8_t* src = scratch_.data();
    const bool quarter = rotation_ == 90 || rotation_ == 270;
    at::Tensor out = torch::empty({quarter ? cw : ch, quarter ? ch : cw, 3}, torch::kUInt8);
    uint8_t* dst = out.data_ptr<uint8_t>();
    if (rotation_ == 0) {
      for (int y = 0; y < ch; ++y)
        std::memcpy(dst + static_cast<size_t>(y) * cw * 3, src + (static_cast<size_t>(y0 + y) * dw + x0) * 3, cw * 3);
      return out;
    }
    const int oh = static_cast<int>(out.size(0)), ow = static_cast<int>(out.size(1));
    for (int y = 0; y < oh; ++y) {
      for (int x = 0; x < ow; ++x) {
        int sy, sx;  // source pixel (in the crop) shown at (y, x)
        if (rotation_ == 90) { sy = ch - 1 - x; sx = y; }          // clockwise
        else if (rotation_ == 270) { sy = x; sx = cw - 1 - y; }    // counter-clockwise
        else { sy = ch - 1 - y; sx = cw - 1 - x; }                 // 180
        const uint8_t* p = src + (static_cast<size_t>(y0 + sy) * dw + x0 + sx) * 3;
        uint8_t* q = dst + (static_cast<size_t>(y) * ow + x) * 3;
        q[0] = p[0]; q[1] = p[1]; q[2] = p[2];
      }
    }
    return out;
  }

 private:
  int first_w_ = 0, first_h_ = 0;  // size 0: the first frame's size, kept for all
  int size_;
  int rotation_;
  SwsPtr sws_;
  const SwsContext* configured_ = nullptr;
  std::array<int, 6> key_{};
  std::vector<uint8_t> scratch_;  // swscale output before crop/rotate, reused across frames
};

struct StopReading {};

const ReadOptions& validated(const ReadOptions& o) {
  validate(o);
  return o;
}

// Decodes the video stream and applies PTS resampling.
class Decoder {
 public:
  Decoder(const std::string& path, const ReadOptions& opts)
      : opts_(validated(opts)), in_(path, opts) {
    stream_index_ = in_.require_video_stream();
    st_ = in_.fmt()->streams[stream_index_];
    const AVCodecParameters* par = st_->codecpar;
    if (par->width <= 0 || par->height <= 0) fail(path, "video stream has no frame size");
    if (static_cast<int64_t>(par->width) * par->height > opts.max_pixels)
      fail(path, "frame size " + std::to_string(par->width) + "x" + std::to_string(par->height) +
                     " exceeds the pixel limit of " + std::to_string(opts.max_pixels));
    const AVCodec* codec = avcodec_find_decoder(par->codec_id);
    if (!codec)
      fail(path, "unsupported video codec " + squote(avcodec_get_name(par->codec_id)) +
                     " (this FFmpeg has no decoder for it)");
    ctx_.reset(avcodec_alloc_context3(codec));
    if (!ctx_) throw Error("out of memory");
    ctx_->opaque = &tally_;
    check(avcodec_parameters_to_context(ctx_.get(), par), path, "cannot set up the decoder");
    ctx_->thread_count = opts.threads;
    ctx_->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    ctx_->max_pixels = opts.max_pixels;
    check(avcodec_open2(ctx_.get(), codec, nullptr), path,
          "cannot open the " + std::string(codec->name) + " decoder");
    tb_ = av_q2d(st_->time_base);
    fps_in_ = stream_fps(st_);
    if (st_->start_time != AV_NOPTS_VALUE) t0_ = st_->start_time * tb_;
    out_fps_ = opts.fps > 0 ? opts.fps : fps_in_;
    convert_ = std::make_unique<Converter>(opts.size, opts.apply_rotation ? stream_rotation(st_) : 0);
    next_target_ = opts.start;
  }

  double output_fps() const { return out_fps_; }

  int64_t run(const FrameCallback& cb) {
    cb_ = &cb;
    const std::string& path = in_.path();
    if (opts_.start > 0) seek(opts_.start);
    PacketPtr pkt = make_packet();
    FramePtr frame = make_frame();
    try {
      bool eof = false;
      while (!eof) {
        int r = av_read_frame(in_.fmt(), pkt.get());
        if (r == AVERROR_EOF) {
          eof = true;
          r = avcodec_send_packet(ctx_.get(), nullptr);
        } else if (r < 0) {
          fail(path, "read error (truncated or corrupt file?): " + av_error(r));
        } else {
          if (pkt->stream_index != stream_index_) {
            av_packet_unref(pkt.get());
            continue;
          }
          ++packets_;
          r = avcodec_send_packet(ctx_.get(), pkt.get());
          av_packet_unref(pkt.get());
          if (r < 0 && r != AVERROR(EAGAIN)) ++decode_errors_;
        }
        while (true) {
          r = avcodec_receive_frame(ctx_.get(), frame.get());
          if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) break;
          if (r < 0) {
            ++decode_errors_;
            break;
          }
          on_frame(frame.get());
          av_frame_unref(frame.get());
        }
      }
      finish();
    } catch (const StopReading&) {
    }
    return delivered_;
  }

 private:
  void seek(double seconds) {
    const double t = (std::isnan(t0_) ? 0 : t0_) + seconds;
    const auto ts = static_cast<int64_t>(std::floor(t / tb_));
    if (av_seek_frame(in_.fmt(), stream_index_, ts, AVSEEK_FLAG_BACKWARD) >= 0) {
      avcodec_flush_buffers(ctx_.get());
      seeked_ = true;
    }
  }

  void on_frame(AVFrame* f) {
    const std::string& path = in_.path();
    // Concealed errors: the decoder patched the picture up (FFmpeg's program logs them as errors).
    if (f->decode_error_flags != 0 || (f->flags & AV_FRAME_FLAG_CORRUPT)) ++damaged_;
    if (++decoded_ > opts_.max_decoded_frames)
      fail(path, "more than " + std::to_string(opts_.max_decoded_frames) + " decoded frames");
    if (static_cast<int64_t>(f->width) * f->height > opts_.max_pixels || f->width <= 0 ||
        f->height <= 0)
      fail(path, "decoded frame size " + std::to_string(f->width) + "x" +
                     std::to_string(f->height) + " is empty or exceeds the pixel limit");
    // Presentation time, relative to the stream start.
    double t;
    int64_t pts = f->best_effort_timestamp;
    if (pts != AV_NOPTS_VALUE) {
      t = pts * tb_;
      if (std::isnan(t0_)) t0_ = t;
      t -= t0_;
    } else {
      t = std::isnan(last_t_) ? 0 : last_t_ + (fps_in_ > 0 ? 1.0 / fps_in_ : 0.04);
    }
    if (!std::isnan(last_t_) && t <= last_t_) t = last_t_ + 1e-6;  // keep time monotonic
    double dur = frame_duration_ticks(f) * tb_;
    if (!(dur > 0)) dur = fps_in_ > 0 ? 1.0 / fps_in_ : (std::isnan(last_t_) ? 0.04 : t - last_t_);
    last_t_ = t;
    last_end_ = t + dur;

    const bool bounded = opts_.end >= 0;
    if (opts_.fps <= 0) {  // native rate: every frame in [start, end)
      if (t < opts_.start - kEps) return;
      if (bounded && t >= opts_.end - kEps) throw_stop();
      emit(f, t, ++serial_);
      return;
    }
    // Sample and hold: output time T shows the latest frame with pts <= T.
    const int64_t this_serial = ++serial_;
    while (next_target_ < t - kEps && (!bounded || next_target_ < opts_.end - kEps)) {
      if (held_) emit(held_.get(), next_target_, held_serial_);
      else emit(f, next_target_, this_serial);  // before the first frame: hold it backwards
      advance_target();
    }
    if (bounded && t >= opts_.end - kEps) throw_stop();
    if (!held_) held_ = make_frame();
    av_frame_unref(held_.get());
    if (av_frame_ref(held_.get(), f) < 0) throw Error("out of memory");
    held_serial_ = this_serial;
  }

  void finish() {
    const std::string& path = in_.path();
    if (opts_.fps > 0 && held_) {
      double limit = last_end_;
      if (opts_.end >= 0) limit = std::min(limit, opts_.end);
      while (next_target_ < limit - kEps) {
        emit(held_.get(), next_target_, held_serial_);
        advance_target();
      }
    }
    if (decoded_ == 0) {
      if (packets_ > 0 || decode_errors_ > 0)
        fail(path, "no frame could be decoded (corrupt or truncated video data)");
      fail(path, "the video stream has no frames");
    }
    // The container promised more frames than came out. Its count is a hint,
    // not the truth (AVI counts the empty index entries that stand for dropped
    // frames, and FFmpeg's own program converts such files by their times), so
    // the times decide: truncated when the last frame ends clearly before the
    // stated duration, or when no duration is stated.
    if (!seeked_ && st_->nb_frames > 0 && decoded_ < st_->nb_frames) {
      const double stated = stated_duration();
      const double slack = 2.0 / (fps_in_ > 0 ? fps_in_ : 25.0);
      if (!(stated > 0) || last_end_ < stated - slack)
        fail(path, "truncated or corrupt: decoded " + std::to_string(decoded_) + " of " +
                       std::to_string(st_->nb_frames) + " frames" +
                       (stated > 0 ? ", up to " + seconds_text(last_end_) + " of " + seconds_text(stated) : ""));
    }
    // Damaged data gives damaged frames: refused, as FFmpeg's own program
    // reports such a file as broken (it still converts it, logging errors).
    // After a seek the first frames may miss their references; not counted.
    if (!seeked_ && (decode_errors_ > 0 || damaged_ > 0 || tally_.errors > 0)) {
      std::string first;
      {
        std::lock_guard<std::mutex> lock(tally_.m);
        first = tally_.first;
      }
      fail(path, "corrupt video data: FFmpeg reported " + std::to_string(tally_.errors.load()) + " error(s)" +
                     (first.empty() ? "" : " (first: " + first + ")") + ", " + std::to_string(decode_errors_) + " of " +
                     std::to_string(packets_) + " packets could not be decoded, " + std::to_string(damaged_) + " of " +
                     std::to_string(decoded_) + " frames came out damaged");
    }
  }

  static std::string seconds_text(double s) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f s", s);
    return b;
  }

  // The stream's duration in seconds (else the file's), 0 when neither is stated.
  double stated_duration() const {
    if (st_->duration != AV_NOPTS_VALUE && st_->duration > 0) return st_->duration * tb_;
    const AVFormatContext* fmt = in_.fmt();
    if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0) return static_cast<double>(fmt->duration) / AV_TIME_BASE;
    return 0;
  }

  void advance_target() {
    ++target_index_;
    next_target_ = opts_.start + static_cast<double>(target_index_) / opts_.fps;
  }

  [[noreturn]] void throw_stop() {
    stopped_early_ = true;
    throw StopReading{};
  }

  void emit(const AVFrame* f, double t, int64_t serial) {
    if (delivered_ >= opts_.max_frames)
      fail(in_.path(), "more than " + std::to_string(opts_.max_frames) +
                           " output frames; cut the clip with start/end or raise the frame limit");
    if (serial != cached_serial_) {
      cached_ = (*convert_)(f);
      cached_serial_ = serial;
    }
    ++delivered_;
    if (!(*cb_)(cached_, t)) throw_stop();
  }

  static constexpr double kEps = 1e-4;

  ReadOptions opts_;
  ErrorTally tally_;  // before in_ and ctx_: they point to it
  Input in_;
  int stream_index_ = -1;
  AVStream* st_ = nullptr;
  CodecCtxPtr ctx_;
  std::unique_ptr<Converter> convert_;
  const FrameCallback* cb_ = nullptr;
  double tb_ = 0, fps_in_ = 0, out_fps_ = 0;
  double t0_ = std::nan("");
  double last_t_ = std::nan(""), last_end_ = 0;
  double next_target_ = 0;
  int64_t target_index_ = 0;
  FramePtr held_;
  int64_t held_serial_ = -1, serial_ = 0, cached_serial_ = -1;
  at::Tensor cached_;
  int64_t packets_ = 0, decoded_ = 0, decode_errors_ = 0, damaged_ = 0, delivered_ = 0;
  bool seeked_ = false, stopped_early_ = false;
};

}  // namespace

void require_video_support() {}

Info probe(const std::string& path, const ReadOptions& limits, bool count_frames) {
  Input in(path, limits);
  AVFormatContext* fmt = in.fmt();
  Info info;
  info.path = path;
  info.format = fmt->iformat->name;
  std::error_code ec;
  info.size_bytes = static_cast<int64_t>(fs::file_size(path, ec));
  if (fmt->duration != AV_NOPTS_VALUE) info.duration = fmt->duration / static_cast<double>(AV_TIME_BASE);
  info.video_stream = in.video_stream();
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    const AVStream* st = fmt->streams[i];
    const AVCodecParameters* par = st->codecpar;
    StreamInfo s;
    s.index = static_cast<int>(i);
    const char* type = av_get_media_type_string(par->codec_type);
    s.type = type ? type : "unknown";
    s.codec = avcodec_get_name(par->codec_id);
    if (st->duration != AV_NOPTS_VALUE) s.duration = st->duration * av_q2d(st->time_base);
    if (par->codec_type == AVMEDIA_TYPE_VIDEO) {
      s.width = par->width;
      s.height = par->height;
      s.fps = stream_fps(st);
      s.rotation = stream_rotation(st);
    } else if (par->codec_type == AVMEDIA_TYPE_AUDIO) {
      s.sample_rate = par->sample_rate;
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(59, 24, 100)
      s.channels = par->ch_layout.nb_channels;
#else
      s.channels = par->channels;
#endif
    }
    info.streams.push_back(s);
  }
  // Exact frame count of the video stream: count its packets (no decoding).
  if (count_frames && info.video_stream >= 0) {
    PacketPtr pkt = make_packet();
    int64_t n = 0;
    int r;
    while ((r = av_read_frame(fmt, pkt.get())) >= 0) {
      if (pkt->stream_index == info.video_stream && ++n > limits.max_decoded_frames)
        fail(path, "more than " + std::to_string(limits.max_decoded_frames) + " frames");
      av_packet_unref(pkt.get());
    }
    if (r != AVERROR_EOF) fail(path, "read error (truncated or corrupt file?): " + av_error(r));
    info.streams[info.video_stream].frames = n;
  }
  return info;
}

int64_t read_frames(const std::string& path, const ReadOptions& opts, const FrameCallback& cb) {
  Decoder dec(path, opts);
  return dec.run(cb);
}

Video read(const std::string& path, const ReadOptions& opts) {
  Decoder dec(path, opts);
  std::vector<at::Tensor> frames;
  dec.run([&](const at::Tensor& f, double) {
    frames.push_back(f);
    return true;
  });
  if (frames.empty())
    fail(path, "no frames in the requested range (start " + std::to_string(opts.start) + " s)");
  return Video{torch::stack(frames), dec.output_fps()};
}

at::Tensor read_image(const std::string& path, int size, const ReadOptions& limits) {
  ReadOptions o = limits;
  o.fps = 0;
  o.size = size;
  o.start = 0;
  o.end = -1;
  Decoder dec(path, o);
  at::Tensor img;
  dec.run([&](const at::Tensor& f, double) {
    img = f;
    return false;
  });
  if (!img.defined()) fail(path, "no image could be decoded");
  return img;
}

}  // namespace loong::video
