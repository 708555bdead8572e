// Process-wide runtime set-up: thread counts and device parsing.
#pragma once
#include <string>

#include <c10/core/Device.h>

namespace loong {

// Sets LibTorch's intra-op thread count. threads <= 0 means: $LOONG_THREADS if
// set, else every hardware thread. (at::get_num_threads() starts at 1 on some
// machines, so this must always be called.) Returns the count in effect.
int init_threads(int threads = 0);

// "cpu", "cuda", "cuda:1". Throws loong::Error when the device is unknown or
// this build/machine has no CUDA.
c10::Device parse_device(const std::string& name);

// A one-line description of the build: version, LibTorch, options.
std::string build_info();

}  // namespace loong
