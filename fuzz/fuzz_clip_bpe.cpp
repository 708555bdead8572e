// CLIP's BPE merges file (plain text or gzip), then text through it.
#include "fuzz_util.h"
#include "loong/eval/clipsim.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  const std::string path = loong::fuzz::input_file(data, size, gz ? "merges.txt.gz" : "merges.txt");
  return loong::fuzz::expect_clean([&] {
    auto bpe = loong::eval::ClipBpe::load(path);
    bpe.tokenize({"a red sneaker moving to the right", "don't\t  STOP 42 \xc3\xa9t\xc3\xa9", ""});
  });
}
