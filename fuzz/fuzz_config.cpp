// Every JSON config loong reads: the first byte picks the reader, the rest is
// the file (tokenizer, LM, both training configs, bundle, probe, upscaler).
#include "fuzz_util.h"
#include "loong/core/json_util.h"
#include "loong/eval/probe.h"
#include "loong/gen/bundle.h"
#include "loong/gen/sr.h"
#include "loong/lm/config.h"
#include "loong/lm/train_config.h"
#include "loong/tokenizer/config.h"
#include "loong/tokenizer/train_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string path = loong::fuzz::input_file(data + 1, size - 1, "config.json");
  return loong::fuzz::expect_clean([&] {
    switch (data[0] % 8) {
      case 0: loong::tokenizer::TokenizerConfig::load(path); break;
      case 1: loong::lm::LmConfig::load(path); break;
      case 2: loong::tokenizer::RunConfig::load(path); break;
      case 3: loong::lm::LmTrainConfig::load(path); break;
      case 4: loong::gen::BundleInfo::from_json(loong::read_json_file(path), path); break;
      case 5: loong::eval::ProbeConfig::from_json(loong::read_json_file(path), path); break;
      case 6: loong::gen::SrConfig::from_json(loong::read_json_file(path), path); break;
      default: loong::read_json_file(path); break;
    }
  });
}
