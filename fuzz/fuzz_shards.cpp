// Token shards (`loong tokenize`), read memory-mapped by the trainer.
#include "fuzz_util.h"
#include "loong/lm/shards.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = loong::fuzz::input_file(data, size, "x.loongshard");
  return loong::fuzz::expect_clean([&] {
    loong::lm::ShardReader r(path);
    int64_t sum = 0;
    for (int64_t i = 0; i < r.size(); ++i) {
      const auto s = r.at(i);
      for (int64_t k = 0; k < s.text_len; ++k) sum += s.text[k];
      for (int64_t k = 0; k < s.frames * s.tokens_per_frame(); ++k) sum += s.video[k];
      sum += static_cast<int64_t>(s.caption().size());
    }
    if (sum == 42) std::fprintf(stderr, " ");  // keeps the reads
  });
}
