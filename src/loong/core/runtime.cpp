#include "loong/core/runtime.h"

#include <cstdlib>
#include <thread>

#include <torch/torch.h>

#include "loong/core/error.h"
#include "loong/core/torch_compat.h"

namespace loong {

int init_threads(int threads) {
  if (threads <= 0) {
    if (const char* env = std::getenv("LOONG_THREADS"); env && *env) {
      char* end = nullptr;
      long v = std::strtol(env, &end, 10);
      if (*end != '\0' || v <= 0 || v > 4096)
        fail("LOONG_THREADS", "expected a positive integer, got " + squote(env));
      threads = static_cast<int>(v);
    } else {
      threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    }
  }
  at::set_num_threads(threads);
  return at::get_num_threads();
}

c10::Device parse_device(const std::string& name) {
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(name);
  } catch (const std::exception&) {
    fail("--device", "expected 'cpu', 'cuda' or 'cuda:N', got " + squote(name));
  }
  if (device.is_cuda() && !torch::cuda::is_available())
    fail("--device", "CUDA was requested but this build or machine has no CUDA device");
  if (!device.is_cpu() && !device.is_cuda())
    fail("--device", "expected 'cpu', 'cuda' or 'cuda:N', got " + squote(name));
  return device;
}

std::string build_info() {
  std::string s = std::string("loong ") + LOONG_VERSION + " (LibTorch " +
                  std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                  "." + std::to_string(TORCH_VERSION_PATCH);
  s += torch::cuda::is_available() ? ", CUDA" : ", CPU";
#ifdef LOONG_WITH_FFMPEG
  s += ", FFmpeg";
#endif
#ifdef LOONG_WITH_SENTENCEPIECE
  s += ", SentencePiece";
#endif
#ifdef LOONG_WITH_PNG
  s += ", PNG";
#endif
  return s + ")";
}

}  // namespace loong
