// Text a user writes: `SECONDS: prompt` story files (--prompts) and the
// moving-fashion captions the probe's scorer parses (the first byte picks).
#include "fuzz_util.h"
#include "loong/eval/caption.h"
#include "loong/gen/long_video.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  return loong::fuzz::expect_clean([&] {
    if (data[0] & 1) {
      loong::eval::parse_caption(text);
    } else {
      const std::string path = loong::fuzz::input_file(data + 1, size - 1, "story.txt");
      loong::gen::PromptSchedule::load(path);
    }
  });
}
