// Video I/O: MP4 round trip, frame-rate resampling (constant and variable),
// rotation, resize/crop, time ranges, GIF, and every bad-input case.
#include <cstdlib>
#include <cstring>
#include <random>

#include "loong/io/video.h"
#include "test_util.h"

extern "C" {
#include <libavformat/avformat.h>
}

namespace video = loong::video;
using loong::test::expect_error;
using loong::test::TempDir;

namespace {

std::string write_clip(const TempDir& dir, const std::string& name, const torch::Tensor& frames,
                       double fps, int crf = 18) {
  video::WriteOptions o;
  o.fps = fps;
  o.crf = crf;
  const std::string p = dir / name;
  video::write(p, frames, o);
  return p;
}

// A WAV file: audio only.
std::string write_wav(const std::string& path) {
  const uint32_t rate = 8000, n = 800;
  std::string b = "RIFF";
  auto u32 = [&](uint32_t v) { for (int i = 0; i < 4; ++i) b += char((v >> (8 * i)) & 0xff); };
  auto u16 = [&](uint16_t v) { b += char(v & 0xff); b += char(v >> 8); };
  u32(36 + n * 2);
  b += "WAVEfmt ";
  u32(16); u16(1); u16(1); u32(rate); u32(rate * 2); u16(2); u16(16);
  b += "data";
  u32(n * 2);
  b += std::string(n * 2, '\0');
  loong::test::write_bytes(path, b);
  return path;
}

// A NUT file whose video stream has a codec no decoder exists for.
std::string write_unknown_codec(const std::string& path) {
  AVFormatContext* oc = nullptr;
  avformat_alloc_output_context2(&oc, nullptr, "nut", path.c_str());
  AVStream* st = avformat_new_stream(oc, nullptr);
  st->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
  st->codecpar->codec_id = AV_CODEC_ID_NONE;
  st->codecpar->codec_tag = MKTAG('Z', 'Z', 'Z', 'Z');
  st->codecpar->width = 32;
  st->codecpar->height = 32;
  st->time_base = AVRational{1, 25};
  avio_open(&oc->pb, path.c_str(), AVIO_FLAG_WRITE);
  EXPECT_GE(avformat_write_header(oc, nullptr), 0);
  AVPacket* pkt = av_packet_alloc();
  for (int i = 0; i < 3; ++i) {
    av_new_packet(pkt, 64);
    std::memset(pkt->data, i, 64);
    pkt->pts = pkt->dts = i;
    pkt->stream_index = 0;
    pkt->flags |= AV_PKT_FLAG_KEY;
    av_interleaved_write_frame(oc, pkt);
  }
  av_packet_free(&pkt);
  av_write_trailer(oc);
  avio_closep(&oc->pb);
  avformat_free_context(oc);
  return path;
}

}  // namespace

TEST(VideoIO, Mp4RoundTripKeepsEveryFrameAtHighQuality) {
  TempDir dir;
  auto clip = loong::test::natural_clip(24, 96, 128);
  const std::string p = write_clip(dir, "rt.mp4", clip, 12);
  auto v = video::read(p);
  ASSERT_EQ(v.frames.sizes(), clip.sizes()) << "frame count and size are exact";
  EXPECT_DOUBLE_EQ(v.fps, 12);
  double worst = 99;
  for (int64_t i = 0; i < clip.size(0); ++i) worst = std::min(worst, loong::test::psnr(v.frames[i], clip[i]));
  EXPECT_GE(worst, 32.0) << "PSNR of the worst frame at the default quality";
  auto info = video::probe(p);
  ASSERT_EQ(info.video_stream, 0);
  EXPECT_EQ(info.streams[0].codec, "h264");
  EXPECT_EQ(info.streams[0].frames, 24);
  EXPECT_EQ(info.streams[0].width, 128);
  EXPECT_NEAR(info.duration, 2.0, 1e-3);
  EXPECT_EQ(info.to_json()["streams"][0]["fps"], 12.0);
}

TEST(VideoIO, OddSizesArePaddedToEven) {
  TempDir dir;
  auto clip = loong::test::natural_clip(3, 33, 47);
  auto v = video::read(write_clip(dir, "odd.mp4", clip, 5));
  EXPECT_EQ(v.frames.sizes(), (std::vector<int64_t>{3, 34, 48, 3}));
  EXPECT_GE(loong::test::psnr(v.frames.narrow(1, 0, 33).narrow(2, 0, 47), clip), 30.0);
}

TEST(VideoIO, ResamplesThirtyFpsByTimestamps) {
  TempDir dir;
  auto clip = loong::test::indexed_clip(60, 32, 32);  // 2 s at 30 fps
  const std::string p = write_clip(dir, "30fps.mp4", clip, 30, 0);
  video::ReadOptions o;
  o.fps = 6.5;
  auto v = video::read(p, o);
  ASSERT_EQ(v.frames.size(0), 13) << "2 s at 6.5 fps";
  EXPECT_EQ(v.fps, 6.5);
  for (int64_t k = 0; k < 13; ++k)  // output k shows the latest frame with pts <= k / 6.5
    EXPECT_EQ(loong::test::index_of_level(v.frames[k]), static_cast<int64_t>(std::floor(k / 6.5 * 30 + 1e-9))) << k;
  o.fps = 60;  // up-sampling repeats frames
  auto up = video::read(p, o);
  ASSERT_EQ(up.frames.size(0), 120);
  EXPECT_EQ(loong::test::index_of_level(up.frames[2]), 1);
  EXPECT_EQ(loong::test::index_of_level(up.frames[3]), 1);
}

TEST(VideoIO, ResamplesVariableFrameRateFiles) {
  TempDir dir;
  const std::vector<double> times = {0.0, 0.1, 0.15, 0.5, 0.55, 0.9, 1.2};
  video::WriteOptions w;
  w.variable_frame_rate = true;
  w.fps = 10;
  w.crf = 0;
  const std::string p = dir / "vfr.mp4";
  {
    video::VideoWriter writer(p, 32, 32, w);
    auto clip = loong::test::indexed_clip(static_cast<int64_t>(times.size()), 32, 32, 20);
    for (size_t i = 0; i < times.size(); ++i) writer.write_at(clip[i], times[i]);
    writer.close();
  }
  video::ReadOptions o;
  o.fps = 10;
  auto v = video::read(p, o);
  ASSERT_GE(v.frames.size(0), 13);
  for (int64_t k = 0; k < 13; ++k) {
    const double t = k / 10.0;
    int64_t expect = 0;
    for (size_t i = 0; i < times.size(); ++i) if (times[i] <= t + 1e-6) expect = static_cast<int64_t>(i);
    EXPECT_EQ(loong::test::index_of_level(v.frames[k], 20), expect) << "t = " << t;
  }
  o.fps = 0;  // native: every decoded frame once
  EXPECT_EQ(video::read(p, o).frames.size(0), static_cast<int64_t>(times.size()));
}

TEST(VideoIO, AppliesRotationMetadata) {
  TempDir dir;
  auto frame = torch::full({1, 32, 64, 3}, 40, torch::kUInt8);  // H = 32, W = 64
  frame[0].narrow(0, 0, 8).narrow(1, 0, 8).fill_(250);          // bright marker at top-left
  video::WriteOptions w;
  w.rotation = 90;  // the player turns the picture 90 degrees clockwise
  w.crf = 0;
  const std::string p = dir / "rot.mp4";
  video::write(p, frame, w);
  EXPECT_EQ(video::probe(p).streams[0].rotation, 90);
  auto v = video::read(p);
  ASSERT_EQ(v.frames.sizes(), (std::vector<int64_t>{1, 64, 32, 3}));
  // Clockwise: the top-left corner moves to the top-right.
  EXPECT_GT(v.frames[0][2][29][0].item<int>(), 200);
  EXPECT_LT(v.frames[0][2][2][0].item<int>(), 100);
  video::ReadOptions raw;
  raw.apply_rotation = false;
  EXPECT_EQ(video::read(p, raw).frames.sizes(), (std::vector<int64_t>{1, 32, 64, 3}));
  w.rotation = 270;
  video::write(dir / "rot270.mp4", frame, w);
  auto ccw = video::read(dir / "rot270.mp4");
  EXPECT_GT(ccw.frames[0][61][2][0].item<int>(), 200) << "counter-clockwise: top-left goes bottom-left";
}

TEST(VideoIO, ResizesShorterSideThenCentreCrops) {
  TempDir dir;
  auto f = torch::full({2, 120, 160, 3}, 128, torch::kUInt8);
  f.narrow(2, 0, 20).fill_(0);     // left band: cropped away
  f.narrow(2, 140, 20).fill_(255); // right band: cropped away
  f.narrow(1, 0, 10).select(3, 0).fill_(255);  // a red-ish top stripe: kept (vertical is the short side)
  const std::string p = write_clip(dir, "wide.mp4", f, 5, 0);
  video::ReadOptions o;
  o.size = 60;
  auto v = video::read(p, o);
  ASSERT_EQ(v.frames.sizes(), (std::vector<int64_t>{2, 60, 60, 3}));
  auto mid = v.frames[0].narrow(0, 10, 50).to(torch::kFloat);
  EXPECT_NEAR(mid.mean().item<double>(), 128, 4) << "no trace of the side bands";
  EXPECT_GT(v.frames[0][1][30][0].item<int>(), 200) << "top stripe kept";
}

TEST(VideoIO, StartAndEndTimes) {
  TempDir dir;
  const std::string p = write_clip(dir, "t.mp4", loong::test::indexed_clip(60, 16, 16), 30, 0);
  video::ReadOptions o;
  o.fps = 10;
  o.start = 0.5;
  o.end = 1.5;
  auto v = video::read(p, o);
  ASSERT_EQ(v.frames.size(0), 10);
  EXPECT_EQ(loong::test::index_of_level(v.frames[0]), 15);
  EXPECT_EQ(loong::test::index_of_level(v.frames[9]), 42);
  o.start = 5;
  o.end = -1;
  expect_error([&] { video::read(p, o); }, {p, "no frames in the requested range"});
}

TEST(VideoIO, GifRoundTrip) {
  TempDir dir;
  auto clip = loong::test::natural_clip(5, 40, 48);
  const std::string p = write_clip(dir, "a.gif", clip, 5);
  auto v = video::read(p);
  EXPECT_EQ(v.frames.sizes(), clip.sizes());
  EXPECT_GE(loong::test::psnr(v.frames, clip), 25.0) << "a per-clip palette keeps colours close";
  EXPECT_EQ(video::probe(p).streams[0].codec, "gif");
}

TEST(VideoIO, ReadsImages) {
  TempDir dir;
  auto clip = loong::test::natural_clip(1, 30, 40);
  const std::string p = write_clip(dir, "one.mp4", clip, 1);
  auto img = video::read_image(p, 20);
  EXPECT_EQ(img.sizes(), (std::vector<int64_t>{20, 20, 3}));
}

TEST(VideoIO, WriterIsAtomic) {
  TempDir dir;
  const std::string p = write_clip(dir, "keep.mp4", loong::test::natural_clip(4, 16, 16), 4);
  const std::string before = loong::test::read_bytes(p);
  {
    video::VideoWriter w(p, 16, 16);
    w.write(loong::test::natural_clip(2, 16, 16, 9));
    // destroyed without close(): as if the run were stopped
  }
  EXPECT_EQ(loong::test::read_bytes(p), before);
  {
    video::VideoWriter w(p, 16, 16);
    expect_error([&] { w.close(); }, {p, "no frames"});
  }
  EXPECT_EQ(loong::test::read_bytes(p), before);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1) << "no temporary files left";
  expect_error([&] { video::VideoWriter w(dir / "x.avi", 16, 16); }, {"x.avi", "extension"});
  video::VideoWriter w(dir / "y.mp4", 16, 16);
  expect_error([&] { w.write(torch::zeros({8, 8, 3}, torch::kUInt8)); }, {"y.mp4", "expected a frame [16, 16, 3]"});
}

TEST(VideoIO, StreamingWriterIsPlayableAfterEachFlush) {
  TempDir dir;
  const std::string p = write_clip(dir, "s.mp4", loong::test::natural_clip(3, 32, 32), 4);
  const std::string before = loong::test::read_bytes(p);
  const std::string partial = video::streaming_path(p);
  EXPECT_EQ(partial, dir / "s.partial.mp4");
  auto clip = loong::test::natural_clip(12, 32, 32, 4);
  {
    video::WriteOptions o;
    o.streaming = true;
    video::VideoWriter w(p, 32, 32, o);
    w.write(clip.narrow(0, 0, 5));
    w.flush();
    // Read while the writer is still open: the first 5 frames are there.
    auto v = video::read(partial);
    ASSERT_EQ(v.frames.size(0), 5);
    EXPECT_GT(loong::test::psnr(v.frames, clip.narrow(0, 0, 5)), 30);
    w.write(clip.narrow(0, 5, 7));
    w.flush();
    EXPECT_EQ(video::read(partial).frames.size(0), 12);
    // Destroyed without close(), as if stopped: the old file is untouched and
    // the partial one still plays.
  }
  EXPECT_EQ(loong::test::read_bytes(p), before);
  EXPECT_EQ(video::read(partial).frames.size(0), 12);
  {
    // The partial file left there may be someone's: a new writer refuses it.
    video::WriteOptions o;
    o.streaming = true;
    expect_error([&] { video::VideoWriter w(p, 32, 32, o); }, {"s.partial.mp4", "already exists"});
    EXPECT_EQ(video::read(partial).frames.size(0), 12);
    std::filesystem::remove(partial);
    // One that never got a frame (an error before the first clip) leaves nothing.
    { video::VideoWriter w(p, 32, 32, o); }
    EXPECT_FALSE(std::filesystem::exists(partial));
  }
  {
    video::WriteOptions o;
    o.streaming = true;
    video::VideoWriter w(p, 32, 32, o);
    w.write(clip);
    w.close();
  }
  EXPECT_FALSE(std::filesystem::exists(partial));
  EXPECT_EQ(video::read(p).frames.size(0), 12);
  video::WriteOptions o;
  o.streaming = true;
  expect_error([&] { video::VideoWriter w(dir / "x.gif", 16, 16, o); }, {"x.gif", "cannot be streamed"});
}

// Files only FFmpeg's program makes (scripts/video_corpus.sh has the whole set).
TEST(VideoIO, HeaderCountsAreHintsAndDamagedDataIsRefused) {
  if (std::system("ffmpeg -version > /dev/null 2>&1") != 0) GTEST_SKIP() << "no ffmpeg program";
  TempDir dir;
  auto ffmpeg = [&](const std::string& args) {
    ASSERT_EQ(std::system(("ffmpeg -nostdin -loglevel error -y " + args).c_str()), 0) << args;
  };
  // A variable-rate stream in AVI: the muxer writes empty index entries for the
  // gaps, so the header counts 179 frames where 32 are stored. FFmpeg's program
  // converts it; so must we (by the frames' times).
  const std::string avi = dir / "dropped.avi";
  ffmpeg("-f lavfi -i testsrc2=size=64x48:rate=25:duration=8 -vf \"select='lt(mod(n,25),4)'\" -fps_mode vfr "
         "-c:v mpeg4 -q:v 5 -f avi " + avi);
  EXPECT_EQ(video::read(avi).frames.size(0), 32);
  video::ReadOptions at5;
  at5.fps = 5;
  EXPECT_EQ(video::read(avi, at5).frames.size(0), 36);  // 7.16 s at 5 fps
  // Cut short, it is truncated, and said so.
  const std::string bytes = loong::test::read_bytes(avi);
  loong::test::write_bytes(dir / "cut.avi", bytes.substr(0, bytes.size() * 6 / 10));
  expect_error([&] { video::read(dir / "cut.avi"); }, {"cut.avi", "truncated"});
  // A transport stream with its middle overwritten: FFmpeg's decoder conceals
  // the damage and logs errors; we refuse the file and quote the first.
  const std::string ts = dir / "broken.ts";
  ffmpeg("-f lavfi -i testsrc2=size=64x48:rate=25:duration=4 -c:v libx264 -pix_fmt yuv420p -g 25 -f mpegts " + ts);
  std::string t = loong::test::read_bytes(ts);
  std::mt19937 rng(7);
  for (size_t i = t.size() * 2 / 5; i < t.size() * 3 / 5; ++i) t[i] = static_cast<char>(rng());
  loong::test::write_bytes(ts, t);
  expect_error([&] { video::read(ts); }, {"broken.ts", "corrupt video data", "FFmpeg reported", "(first: "});

  // Two transport streams of different frame sizes, one after the other (as a
  // spliced broadcast): every frame keeps the first one's size (found by fuzzing).
  ffmpeg("-f lavfi -i testsrc2=size=64x48:rate=25:duration=1 -c:v libx264 -pix_fmt yuv420p -f mpegts " + (dir / "a.ts"));
  ffmpeg("-f lavfi -i testsrc2=size=32x24:rate=25:duration=1 -c:v libx264 -pix_fmt yuv420p -f mpegts " + (dir / "b.ts"));
  loong::test::write_bytes(dir / "ab.ts", loong::test::read_bytes(dir / "a.ts") + loong::test::read_bytes(dir / "b.ts"));
  const auto ab = video::read(dir / "ab.ts").frames;
  EXPECT_EQ(ab.size(0), 50);
  EXPECT_EQ(ab.size(1), 48);
  EXPECT_EQ(ab.size(2), 64);
}

TEST(VideoIO, BadInputsGiveClearErrors) {
  TempDir dir;
  const std::string good = write_clip(dir, "good.mp4", loong::test::natural_clip(20, 64, 64), 10);
  const std::string bytes = loong::test::read_bytes(good);

  const std::string empty = dir / "empty.mp4";
  loong::test::write_bytes(empty, "");
  expect_error([&] { video::read(empty); }, {empty, "empty file"});

  for (double share : {0.5, 0.9}) {
    SCOPED_TRACE(share);
    const std::string cut = dir / "cut.mp4";
    loong::test::write_bytes(cut, bytes.substr(0, static_cast<size_t>(bytes.size() * share)));
    expect_error([&] { video::read(cut); }, {cut});
  }
  const std::string cut = dir / "cut.mp4";
  loong::test::write_bytes(cut, bytes.substr(0, bytes.size() * 3 / 4));
  expect_error([&] { video::read(cut); }, {cut, "truncated"});

  const std::string text = dir / "notes.mp4";
  loong::test::write_bytes(text, "this is not a video, just some text that pretends to be one\n");
  expect_error([&] { video::read(text); }, {text, "not a video or image file"});

  const std::string wav = write_wav(dir / "sound.wav");
  expect_error([&] { video::read(wav); }, {wav, "audio only"});

  const std::string y4m = dir / "zero.y4m";
  loong::test::write_bytes(y4m, "YUV4MPEG2 W64 H48 F30:1 Ip A1:1 C420jpeg\n");
  expect_error([&] { video::read(y4m); }, {y4m, "no frames"});

  const std::string nut = write_unknown_codec(dir / "odd.nut");
  expect_error([&] { video::read(nut); }, {nut, "unsupported video codec"});

  expect_error([&] { video::read(dir / "missing.mp4"); }, {"missing.mp4", "no such file"});
  expect_error([&] { video::read(dir.path().string()); }, {"got a folder"});

  video::ReadOptions small;
  small.max_pixels = 32 * 32;
  expect_error([&] { video::read(good, small); }, {good, "exceeds the pixel limit"});
  video::ReadOptions few;
  few.max_frames = 5;
  expect_error([&] { video::read(good, few); }, {good, "more than 5 output frames"});
  video::ReadOptions bad;
  bad.fps = -1;
  expect_error([&] { video::read(good, bad); }, {"--fps"});
}

TEST(VideoIO, PlaylistsAndNetworkAreRefused) {
  TempDir dir;
  const std::string good = write_clip(dir, "good.mp4", loong::test::natural_clip(3, 16, 16), 10);
  const std::string m3u8 = dir / "list.m3u8";
  loong::test::write_bytes(m3u8, "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\ngood.mp4\n#EXT-X-ENDLIST\n");
  expect_error([&] { video::read(m3u8); }, {m3u8, "format 'hls' is refused"});
  const std::string concat = dir / "list.ffconcat";
  loong::test::write_bytes(concat, "ffconcat version 1.0\nfile 'good.mp4'\n");
  expect_error([&] { video::read(concat); }, {concat, "format 'concat' is refused"});
  // A path that looks like a URL is a file name, never a network address.
  expect_error([&] { video::read("http://127.0.0.1:9/x.mp4"); }, {"no such file"});
}

TEST(VideoIO, CorruptedBytesNeverCrash) {
  TempDir dir;
  const std::string good = write_clip(dir, "good.mp4", loong::test::natural_clip(12, 48, 48), 6);
  const std::string bytes = loong::test::read_bytes(good);
  std::mt19937 rng(1234);
  int errors = 0, decoded = 0;
  for (int trial = 0; trial < 40; ++trial) {
    std::string b = bytes;
    if (trial % 4 == 3) {
      b.resize(rng() % b.size());  // truncated anywhere
    } else {
      for (int k = 0; k < 1 + trial % 7 * 5; ++k) b[rng() % b.size()] = static_cast<char>(rng());
    }
    const std::string p = dir / ("bad" + std::to_string(trial) + ".mp4");
    loong::test::write_bytes(p, b);
    try {
      video::ReadOptions o;
      o.fps = 6;
      o.size = 32;
      auto v = video::read(p, o);
      EXPECT_EQ(v.frames.size(1), 32);
      ++decoded;
    } catch (const loong::Error& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
      ++errors;
    }
  }
  EXPECT_EQ(errors + decoded, 40);
  EXPECT_GT(errors, 0);
}
