#include "loong/core/runtime.h"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include <torch/torch.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "loong/core/error.h"
#include "loong/core/torch_compat.h"

namespace loong {

namespace {

// adapt_threads' state: the most threads (0: off) and the last look.
struct LoadWatch {
  std::mutex m;
  int max = 0;
  std::vector<int> cpus;  // the cores this process may run on
  bool looked = false;
  double wall = 0, busy = 0, self = 0;
} g_watch;

double monotonic_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Busy seconds (every state but idle and iowait) of `cpus` from /proc/stat's
// "cpuN" lines; false where it cannot be read.
bool cpus_busy_s(const std::vector<int>& cpus, double* out) {
  std::ifstream f("/proc/stat");
  if (!f) return false;
  std::vector<bool> want;
  for (int c : cpus) {
    if (c >= static_cast<int>(want.size())) want.resize(c + 1);
    want[c] = true;
  }
  long long busy = 0;
  int found = 0;
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("cpu", 0) != 0 || line.size() < 4 || !std::isdigit(static_cast<unsigned char>(line[3]))) continue;
    std::istringstream in(line.substr(3));
    int n = -1;
    in >> n;
    if (n < 0 || n >= static_cast<int>(want.size()) || !want[n]) continue;
    long long v = 0;
    for (int i = 0; i < 8 && in >> v; ++i)
      if (i != 3 && i != 4) busy += v;
    ++found;
  }
  if (found == 0) return false;
  *out = static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
  return true;
}

double self_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// The first look, from which the next call measures (g_watch.m held).
void start_watch(int max) {
  g_watch.max = 0;
  g_watch.looked = false;
  if (max <= 1) return;
  if (const char* off = std::getenv("LOONG_ADAPT_THREADS"); off != nullptr && std::string(off) == "0") return;
  cpu_set_t set;
  CPU_ZERO(&set);
  g_watch.cpus.clear();
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) g_watch.cpus.push_back(c);
  if (g_watch.cpus.empty() || !cpus_busy_s(g_watch.cpus, &g_watch.busy)) return;
  g_watch.max = max;
  g_watch.wall = monotonic_s();
  g_watch.self = self_cpu_s();
  g_watch.looked = true;
}

}  // namespace

int adapt_threads() {
  std::lock_guard<std::mutex> lock(g_watch.m);
  if (g_watch.max == 0 || !g_watch.looked) return at::get_num_threads();
  const double now = monotonic_s();
  if (now - g_watch.wall < 0.2) return at::get_num_threads();  // /proc/stat counts in 10 ms ticks
  double busy = 0;
  if (!cpus_busy_s(g_watch.cpus, &busy)) return at::get_num_threads();
  const double self = self_cpu_s();
  if (now - g_watch.wall > 2.0 && (self - g_watch.self) < 0.5 * (now - g_watch.wall)) {
    // A long window in which this process mostly idled (a server between
    // jobs) says little about now: start a fresh one, keep the count.
    g_watch.wall = now, g_watch.busy = busy, g_watch.self = self;
    return at::get_num_threads();
  }
  const double others = ((busy - g_watch.busy) - (self - g_watch.self)) / (now - g_watch.wall);
  g_watch.wall = now, g_watch.busy = busy, g_watch.self = self;
  const double free = static_cast<double>(g_watch.cpus.size()) - std::max(others, 0.0);
  const int n = static_cast<int>(std::max<long>(1, std::min<long>(g_watch.max, std::lround(free))));
  if (n != at::get_num_threads()) at::set_num_threads(n);
  return n;
}

int init_threads(int threads) {
  const bool chosen = threads <= 0 && !(std::getenv("LOONG_THREADS") && *std::getenv("LOONG_THREADS"));
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
  {
    std::lock_guard<std::mutex> lock(g_watch.m);
    start_watch(chosen ? threads : 0);
  }
  return at::get_num_threads();
}

bool keep_freed_memory(bool by_default) {
#if defined(__GLIBC__)
  const char* asked = std::getenv("LOONG_KEEP_FREED_MEMORY");
  if (asked != nullptr && std::string(asked) == "0") return false;
  if (!by_default && (asked == nullptr || std::string(asked) != "1")) return false;
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
  (void)by_default;
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
