// Safetensors files: weights, optimizer state, token codes.
#include "fuzz_util.h"
#include "loong/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = loong::fuzz::input_file(data, size, "x.safetensors");
  return loong::fuzz::expect_clean([&] {
    loong::safetensors::read_header(path);
    auto tensors = loong::safetensors::load(path);
    for (auto& [name, t] : tensors) (void)t.sum();  // every byte of every tensor is readable
  });
}
