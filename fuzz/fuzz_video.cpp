// The video reader (FFmpeg underneath; our demuxing, seeking, rotation,
// timing and conversion code on top). The first byte picks the container the
// file name claims; frames and sizes are bounded as `loong data` bounds them.
#include "fuzz_util.h"
#include "loong/io/video.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* names[] = {"v.mp4", "v.avi", "v.mkv", "v.gif", "v.webm", "v.mov", "v.png", "v.y4m"};
  const std::string path = loong::fuzz::input_file(data + 1, size - 1, names[data[0] % 8]);
  loong::video::ReadOptions o;
  o.max_frames = 64;
  o.max_pixels = 256 * 256;
  o.max_decoded_frames = 256;
  o.threads = 1;
  loong::fuzz::expect_clean([&] { loong::video::probe(path, o); });
  o.fps = (data[0] >> 3) & 1 ? 6.5 : 0;
  o.size = (data[0] >> 4) & 1 ? 16 : 0;
  return loong::fuzz::expect_clean([&] { loong::video::read(path, o); });
}
