// Manifests: JSONL and CSV (the first byte picks which), strict and lenient.
#include "fuzz_util.h"
#include "loong/data/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string path = loong::fuzz::input_file(data + 1, size - 1, data[0] & 1 ? "m.csv" : "m.jsonl");
  loong::fuzz::expect_clean([&] { loong::data::parse_manifest(path); });
  return loong::fuzz::expect_clean([&] { loong::data::load_manifest(path); });
}
