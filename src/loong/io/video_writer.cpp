// Video writing: H.264 MP4 (yuv420p, +faststart, plays in browsers) through
// libx264, and GIF through FFmpeg's palettegen/paletteuse filters (a global
// palette per clip, far better than a fixed 3:3:2 palette).
#include <algorithm>
#include <cmath>
#include <filesystem>

#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/io/ffmpeg_util.h"
#include "loong/io/video.h"

extern "C" {
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/display.h>
#include <libavutil/opt.h>
}

namespace fs = std::filesystem;

namespace loong::video {
using namespace detail;

namespace {

std::string lower_ext(const std::string& path) {
  std::string e = fs::path(path).extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

// A container with one encoded video stream.
class Muxer {
 public:
  Muxer(const std::string& path, const std::string& url, const char* format, const AVCodec* codec,
        int width, int height, AVPixelFormat pix_fmt, AVRational time_base, AVRational framerate,
        AVDictionary** codec_opts, AVDictionary** mux_opts, int rotation)
      : path_(path) {
    check(avformat_alloc_output_context2(&oc_, nullptr, format, url.c_str()), path,
          "cannot create the output container");
    ctx_.reset(avcodec_alloc_context3(codec));
    if (!ctx_) throw Error("out of memory");
    ctx_->width = width;
    ctx_->height = height;
    ctx_->pix_fmt = pix_fmt;
    ctx_->time_base = time_base;
    ctx_->framerate = framerate;
    ctx_->sample_aspect_ratio = AVRational{1, 1};
    if (pix_fmt == AV_PIX_FMT_YUV420P) {  // what swscale's default RGB->YUV produces
      ctx_->colorspace = AVCOL_SPC_SMPTE170M;
      ctx_->color_primaries = AVCOL_PRI_SMPTE170M;
      ctx_->color_trc = AVCOL_TRC_SMPTE170M;
      ctx_->color_range = AVCOL_RANGE_MPEG;
    }
    if (oc_->oformat->flags & AVFMT_GLOBALHEADER) ctx_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    check(avcodec_open2(ctx_.get(), codec, codec_opts), path,
          "cannot open the " + std::string(codec->name) + " encoder");
    st_ = avformat_new_stream(oc_, nullptr);
    if (!st_) throw Error("out of memory");
    st_->time_base = time_base;
    check(avcodec_parameters_from_context(st_->codecpar, ctx_.get()), path, "cannot set stream parameters");
    if (rotation != 0) {
      int32_t matrix[9];
      // Checked against the ffmpeg program: a file written with rotation = 90
      // is shown by ffmpeg/ffplay turned 90 degrees clockwise.
      av_display_rotation_set(matrix, rotation);
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 30, 100)
      AVPacketSideData* sd = av_packet_side_data_new(&st_->codecpar->coded_side_data,
                                                     &st_->codecpar->nb_coded_side_data,
                                                     AV_PKT_DATA_DISPLAYMATRIX, sizeof(matrix), 0);
      if (!sd) throw Error("out of memory");
      std::memcpy(sd->data, matrix, sizeof(matrix));
#else
      uint8_t* sd = av_stream_new_side_data(st_, AV_PKT_DATA_DISPLAYMATRIX, sizeof(matrix));
      if (!sd) throw Error("out of memory");
      std::memcpy(sd, matrix, sizeof(matrix));
#endif
    }
    check(avio_open(&oc_->pb, url.c_str(), AVIO_FLAG_WRITE), path, "cannot open for writing");
    check(avformat_write_header(oc_, mux_opts), path, "cannot write the container header");
    pkt_ = make_packet();
  }

  ~Muxer() {
    if (oc_) {
      if (oc_->pb) avio_closep(&oc_->pb);
      avformat_free_context(oc_);
    }
  }

  AVCodecContext* ctx() const { return ctx_.get(); }
  // Duration of a frame in encoder ticks, used when the encoder leaves it unset.
  void set_frame_ticks(int64_t ticks) { frame_ticks_ = ticks; }

  // frame == nullptr flushes the encoder.
  void encode(AVFrame* frame) {
    check(avcodec_send_frame(ctx_.get(), frame), path_, "encoding failed");
    while (true) {
      int r = avcodec_receive_packet(ctx_.get(), pkt_.get());
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) break;
      check(r, path_, "encoding failed");
      if (pkt_->duration <= 0 && frame_ticks_ > 0) pkt_->duration = frame_ticks_;  // full last frame
      av_packet_rescale_ts(pkt_.get(), ctx_->time_base, st_->time_base);
      pkt_->stream_index = st_->index;
      check(av_interleaved_write_frame(oc_, pkt_.get()), path_, "write failed (disk full?)");
    }
  }

  // Ends the current fragment (fragmented MP4, Matroska) and pushes the bytes to the file.
  void flush() {
    check(av_interleaved_write_frame(oc_, nullptr), path_, "write failed (disk full?)");
    check(av_write_frame(oc_, nullptr), path_, "write failed (disk full?)");
    avio_flush(oc_->pb);
  }

  void finish() {
    encode(nullptr);
    check(av_write_trailer(oc_), path_, "cannot finish the container");
    check(avio_closep(&oc_->pb), path_, "cannot close the file");
  }

 private:
  std::string path_;
  AVFormatContext* oc_ = nullptr;
  AVStream* st_ = nullptr;
  CodecCtxPtr ctx_;
  PacketPtr pkt_;
  int64_t frame_ticks_ = 0;
};

// x264's AVX-512 code paths make the bitstream depend on memory contents:
// generating the same dataset twice in one process on an AVX-512 machine gave
// bit-identical YUV input but different MP4s, while x264 without AVX-512 (or
// without assembly) was repeatable. Where AVX-512 is present, name the CPU
// features x264 may use and leave it out. x264's `asm` overrides detection, so
// the list holds only what this CPU reports.
std::string x264_cpu_flags() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f")) return "";  // x264's own detection is fine
  std::string flags = "asm=MMX2";
#define LOONG_X264_FLAG(feature, name) \
  if (__builtin_cpu_supports(feature)) flags += "," name;
  LOONG_X264_FLAG("sse", "SSE") LOONG_X264_FLAG("sse2", "SSE2") LOONG_X264_FLAG("sse3", "SSE3")
  LOONG_X264_FLAG("ssse3", "SSSE3") LOONG_X264_FLAG("sse4.1", "SSE4.1") LOONG_X264_FLAG("sse4.2", "SSE4.2")
  LOONG_X264_FLAG("avx", "AVX") LOONG_X264_FLAG("fma", "FMA3") LOONG_X264_FLAG("bmi", "BMI1")
  LOONG_X264_FLAG("bmi2", "BMI2") LOONG_X264_FLAG("avx2", "AVX2")
#undef LOONG_X264_FLAG
  return flags;
#else
  return "";
#endif
}

// Copies an RGB tensor [H, W, 3] into an AVFrame of the same size.
void fill_rgb_frame(AVFrame* f, const at::Tensor& rgb) {
  const int h = static_cast<int>(rgb.size(0)), w = static_cast<int>(rgb.size(1));
  const uint8_t* src = rgb.data_ptr<uint8_t>();
  for (int y = 0; y < h; ++y) std::memcpy(f->data[0] + y * f->linesize[0], src + y * w * 3, w * 3);
}

}  // namespace

struct VideoWriter::Impl {
  std::string path;
  AtomicFile file;
  WriteOptions opts;
  int width, height;     // of the frames given
  int enc_w, enc_h;      // of the encoded stream (even for yuv420p)
  bool gif;
  std::unique_ptr<Muxer> mux;
  SwsPtr sws;
  FramePtr yuv;
  std::vector<at::Tensor> gif_frames;  // GIF palettes need every frame first
  int64_t frames = 0;
  int64_t last_pts = -1;
  bool closed = false;

  Impl(const std::string& p, int w, int h, const WriteOptions& o)
      : path(p), file(p), opts(o), width(w), height(h) {
    quiet_ffmpeg_log();
    const std::string ext = lower_ext(p);
    gif = ext == ".gif";
    if (!gif && ext != ".mp4" && ext != ".mov" && ext != ".mkv")
      fail(p, "unsupported output extension " + squote(ext) + " (expected .mp4, .mov, .mkv or .gif)");
    if (gif && o.streaming) fail(p, "GIFs cannot be streamed (a palette needs every frame): use .mp4");
    // The partial file is ours by its name only: one already there may be
    // someone's, so it is never replaced.
    if (o.streaming && fs::exists(streaming_path(p)))
      fail(streaming_path(p), "already exists (a killed run leaves one): remove it if it is not needed, "
                              "or write to another file");
    if (w <= 0 || h <= 0 || w > 16384 || h > 16384)
      fail(p, "frame size " + std::to_string(w) + "x" + std::to_string(h) + " is out of range");
    if (!(o.fps > 0) || o.fps > 1000) fail(p, "fps must be in (0, 1000], got " + std::to_string(o.fps));
    if (o.crf < 0 || o.crf > 51) fail(p, "crf must be in [0, 51], got " + std::to_string(o.crf));
    if (o.rotation % 90 != 0) fail(p, "rotation must be a multiple of 90 degrees");
    enc_w = gif ? w : (w + 1) / 2 * 2;
    enc_h = gif ? h : (h + 1) / 2 * 2;
    if (!gif) open_h264(ext);
  }

  AVRational fps_q() const { return av_d2q(opts.fps, 100000); }
  std::string out_path() const { return opts.streaming ? streaming_path(path) : file.temp_path(); }

  void open_h264(const std::string& ext) {
    const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
    if (!codec) codec = avcodec_find_encoder(AV_CODEC_ID_H264);
    if (!codec) fail(path, "this FFmpeg build has no H.264 encoder");
    AVDictionary* copts = nullptr;
    av_dict_set(&copts, "crf", std::to_string(opts.crf).c_str(), 0);
    av_dict_set(&copts, "preset", opts.preset.c_str(), 0);
    const std::string cpu = x264_cpu_flags();
    if (!cpu.empty() && std::string(codec->name) == "libx264") av_dict_set(&copts, "x264-params", cpu.c_str(), 0);
    // Streaming: every frame's packet leaves the encoder at once, so a flush
    // really puts everything written so far into the file.
    if (opts.streaming) av_dict_set(&copts, "tune", "zerolatency", 0);
    AVDictionary* mopts = nullptr;
    if (ext != ".mkv")
      av_dict_set(&mopts, "movflags", opts.streaming ? "+frag_keyframe+empty_moov+default_base_moof" : "+faststart", 0);
    const AVRational tb = opts.variable_frame_rate ? AVRational{1, 1000} : av_inv_q(fps_q());
    const char* format = ext == ".mkv" ? "matroska" : (ext == ".mov" ? "mov" : "mp4");
    try {
      mux = std::make_unique<Muxer>(path, "file:" + out_path(), format, codec, enc_w, enc_h,
                                    AV_PIX_FMT_YUV420P, tb, fps_q(), &copts, &mopts, opts.rotation);
    } catch (...) {
      av_dict_free(&copts);
      av_dict_free(&mopts);
      throw;
    }
    av_dict_free(&copts);
    av_dict_free(&mopts);
    // The last packet needs a duration or MP4 edit lists drop its frame.
    mux->set_frame_ticks(opts.variable_frame_rate ? std::max<int64_t>(1, std::llround(1000 / opts.fps)) : 1);
    sws.reset(sws_getContext(enc_w, enc_h, AV_PIX_FMT_RGB24, enc_w, enc_h, AV_PIX_FMT_YUV420P,
                             SWS_BICUBIC, nullptr, nullptr, nullptr));
    if (!sws) throw Error("cannot create the RGB to YUV converter");
    yuv = make_frame();
    yuv->format = AV_PIX_FMT_YUV420P;
    yuv->width = enc_w;
    yuv->height = enc_h;
    check(av_frame_get_buffer(yuv.get(), 0), path, "cannot allocate a frame");
  }

  at::Tensor checked_frame(const at::Tensor& frame) const {
    if (frame.dim() != 3 || frame.size(2) != 3 || frame.size(0) != height || frame.size(1) != width)
      fail(path, "expected a frame [" + std::to_string(height) + ", " + std::to_string(width) +
                     ", 3], got " + c10::str(frame.sizes()));
    if (frame.scalar_type() != at::kByte)
      fail(path, "expected uint8 frames, got " + std::string(c10::toString(frame.scalar_type())));
    at::Tensor f = frame.to(at::kCPU).contiguous();
    if (enc_w != width) f = torch::cat({f, f.narrow(1, width - 1, 1)}, 1);  // replicate the edge
    if (enc_h != height) f = torch::cat({f, f.narrow(0, height - 1, 1)}, 0);
    return f.contiguous();
  }

  void add(const at::Tensor& frame, int64_t pts) {
    if (closed) fail(path, "writer is already closed");
    if (pts <= last_pts) fail(path, "frame timestamps must increase");
    at::Tensor f = checked_frame(frame);
    last_pts = pts;
    ++frames;
    if (gif) {
      gif_frames.push_back(f);
      return;
    }
    check(av_frame_make_writable(yuv.get()), path, "cannot write a frame");
    const uint8_t* src[4] = {f.data_ptr<uint8_t>(), nullptr, nullptr, nullptr};
    const int stride[4] = {enc_w * 3, 0, 0, 0};
    sws_scale(sws.get(), src, stride, 0, enc_h, yuv->data, yuv->linesize);
    yuv->pts = pts;
    mux->encode(yuv.get());
  }

  void finish_gif() {
    const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_GIF);
    if (!codec) fail(path, "this FFmpeg build has no GIF encoder");
    GraphPtr graph(avfilter_graph_alloc());
    if (!graph) throw Error("out of memory");
    const AVRational tb = av_inv_q(fps_q());
    const std::string args = "video_size=" + std::to_string(width) + "x" + std::to_string(height) +
                             ":pix_fmt=" + std::to_string(AV_PIX_FMT_RGB24) + ":time_base=" +
                             std::to_string(tb.num) + "/" + std::to_string(tb.den) +
                             ":pixel_aspect=1/1";
    AVFilterContext *src = nullptr, *sink = nullptr;
    check(avfilter_graph_create_filter(&src, avfilter_get_by_name("buffer"), "in", args.c_str(),
                                       nullptr, graph.get()),
          path, "cannot create the GIF filter source");
    check(avfilter_graph_create_filter(&sink, avfilter_get_by_name("buffersink"), "out", nullptr,
                                       nullptr, graph.get()),
          path, "cannot create the GIF filter sink");
    const AVPixelFormat pal[] = {AV_PIX_FMT_PAL8, AV_PIX_FMT_NONE};
    check(av_opt_set_int_list(sink, "pix_fmts", pal, AV_PIX_FMT_NONE, AV_OPT_SEARCH_CHILDREN), path,
          "cannot configure the GIF filter sink");
    AVFilterInOut* outputs = avfilter_inout_alloc();
    AVFilterInOut* inputs = avfilter_inout_alloc();
    outputs->name = av_strdup("in");
    outputs->filter_ctx = src;
    inputs->name = av_strdup("out");
    inputs->filter_ctx = sink;
    int r = avfilter_graph_parse_ptr(
        graph.get(), "split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither=sierra2_4a",
        &inputs, &outputs, nullptr);
    avfilter_inout_free(&inputs);
    avfilter_inout_free(&outputs);
    check(r, path, "cannot build the GIF palette filters");
    check(avfilter_graph_config(graph.get(), nullptr), path, "cannot configure the GIF palette filters");

    Muxer gifmux(path, "file:" + file.temp_path(), "gif", codec, width, height, AV_PIX_FMT_PAL8, tb,
                 fps_q(), nullptr, nullptr, 0);
    gifmux.set_frame_ticks(1);
    FramePtr in = make_frame();
    for (size_t i = 0; i < gif_frames.size(); ++i) {
      av_frame_unref(in.get());
      in->format = AV_PIX_FMT_RGB24;
      in->width = width;
      in->height = height;
      check(av_frame_get_buffer(in.get(), 0), path, "cannot allocate a frame");
      fill_rgb_frame(in.get(), gif_frames[i]);
      in->pts = static_cast<int64_t>(i);
      check(av_buffersrc_add_frame(src, in.get()), path, "GIF filtering failed");
    }
    check(av_buffersrc_add_frame(src, nullptr), path, "GIF filtering failed");
    FramePtr out = make_frame();
    while (true) {
      r = av_buffersink_get_frame(sink, out.get());
      if (r == AVERROR_EOF || r == AVERROR(EAGAIN)) break;
      check(r, path, "GIF filtering failed");
      gifmux.encode(out.get());
      av_frame_unref(out.get());
    }
    gifmux.finish();
  }

  // A streamed file that never got a frame (an error before the first clip)
  // is not worth keeping; one with frames is, as what was finished.
  ~Impl() {
    if (!opts.streaming || closed || frames > 0) return;
    mux.reset();
    std::error_code ec;
    fs::remove(streaming_path(path), ec);
  }

  void close() {
    if (closed) return;
    if (frames == 0) fail(path, "no frames were written");
    if (gif) finish_gif();
    else mux->finish();
    mux.reset();
    if (opts.streaming) commit_file(streaming_path(path), path);
    else file.commit();
    closed = true;
  }
};

VideoWriter::VideoWriter(const std::string& path, int width, int height, const WriteOptions& opts)
    : impl_(std::make_unique<Impl>(path, width, height, opts)) {}

VideoWriter::~VideoWriter() = default;

void VideoWriter::write(const at::Tensor& frames) {
  if (impl_->opts.variable_frame_rate)
    fail(impl_->path, "this writer uses explicit timestamps: call write_at()");
  if (frames.dim() == 4) {
    for (int64_t i = 0; i < frames.size(0); ++i) write(frames[i]);
    return;
  }
  impl_->add(frames, impl_->frames);
}

void VideoWriter::write_at(const at::Tensor& frame, double seconds) {
  if (!impl_->opts.variable_frame_rate)
    fail(impl_->path, "write_at() needs WriteOptions::variable_frame_rate");
  if (!(seconds >= 0)) fail(impl_->path, "frame time must be >= 0");
  impl_->add(frame, static_cast<int64_t>(std::llround(seconds * 1000)));
}

void VideoWriter::close() { impl_->close(); }

void VideoWriter::flush() {
  if (impl_->opts.streaming && !impl_->closed && impl_->mux) impl_->mux->flush();
}

int64_t VideoWriter::frames_written() const { return impl_->frames; }

void write(const std::string& path, const at::Tensor& frames, const WriteOptions& opts) {
  if (frames.dim() != 4 || frames.size(3) != 3)
    fail(path, "expected frames [T, H, W, 3], got " + c10::str(frames.sizes()));
  VideoWriter w(path, static_cast<int>(frames.size(2)), static_cast<int>(frames.size(1)), opts);
  w.write(frames);
  w.close();
}

}  // namespace loong::video
