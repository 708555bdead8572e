#include "loong/core/runtime.h"

#include <climits>
#include <cstdlib>
#include <thread>

#include <torch/torch.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "loong/core/error.h"
#include "loong/core/torch_compat.h"

namespace loong {

int init_threads(int threads) {
  if (threads <= 0) {
    if (const char* env = std::getenv("LOONG_THREADS"); env && *env) {
      char* end = nullptr;
      long v = std::strtol(env, &end, 10);
      if (*end != '\0' || v <= 0 || v > kMaxThreads)
        fail("LOONG_THREADS", "expected an integer from 1 to " + std::to_string(kMaxThreads) + ", got " + squote(env));
      threads = static_cast<int>(v);
    } else {
      threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    }
  }
  if (threads > kMaxThreads)
    fail("--threads", "at most " + std::to_string(kMaxThreads) + ", got " + std::to_string(threads));
  at::set_num_threads(threads);
  return at::get_num_threads();
}

bool keep_freed_memory() {
#if defined(__GLIBC__)
  if (const char* off = std::getenv("LOONG_KEEP_FREED_MEMORY"); off != nullptr && std::string(off) == "0") return false;
  if (std::getenv("MALLOC_MMAP_MAX_") != nullptr || std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr ||
      std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr)
    return false;
  // Every block from the heap (none mapped on its own), and the heap never
  // trimmed below 2 GB of free space. One arena for every thread: a thread's
  // own arena grows in 64 MB heaps, and a block larger than that is mapped
  // and unmapped whatever M_MMAP_MAX says, so generating on a thread other
  // than the main one (`loong serve`'s worker) lost the gain: 10% slower
  // through the server before this (bench_serve).
  return mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1 && mallopt(M_ARENA_MAX, 1) == 1;
#else
  return false;
#endif
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
