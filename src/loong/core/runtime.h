// Process-wide runtime set-up: thread counts and device parsing.
#pragma once
#include <string>

#include <c10/core/Device.h>

namespace loong {

// The most CPU threads --threads and $LOONG_THREADS accept: far past any
// machine's cores, short of the tens of thousands that stall a process.
constexpr int kMaxThreads = 1024;

// Sets LibTorch's intra-op thread count. threads <= 0 means: $LOONG_THREADS if
// set, else every hardware thread. (at::get_num_threads() starts at 1 on some
// machines, so this must always be called.) Returns the count in effect.
int init_threads(int threads = 0);

// Threads that follow the load. OpenMP's threads meet at a barrier after
// every parallel loop, so when one of them shares a core with another busy
// process the others wait out its time slices: on 2 cores beside one busy
// process, 2 threads made the tokenizer's decode 2.2x slower, where 1 thread
// keeps its own speed (docs/benchmarks.md, "Speed under load"). Called at the
// start of each phase of generation (a clip's sampling, the tokenizer's
// decode and encode, upscaling), this measures how much of this process's
// cores other processes used since the last call (/proc/stat of the cores
// it may run on, less its own CPU time; at least 0.2 s apart, else the count
// stays) and sets LibTorch's thread count on the calling thread to the cores
// left, rounded, at least 1 and at most init_threads' count. Only when
// init_threads chose the count itself (no --threads, no LOONG_THREADS) and
// LOONG_ADAPT_THREADS is not 0; otherwise, and where /proc/stat cannot be
// read, the count stays. Returns the count in effect.
int adapt_threads();

// Keeps the memory LibTorch frees in the process's heap, for the next tensor
// of its size, instead of giving it back to the system: glibc maps blocks of
// more than a few MB on their own and unmaps them when freed, so every large
// tensor (a tokenizer's activations, clip after clip) comes back as fresh
// pages the kernel has to fault in and zero. Every command but the training
// ones calls it (cli::command): `loong generate`'s tokenizer decodes 30%
// faster and a minute takes 11% less time, for 25% more peak memory
// (docs/benchmarks.md, "Freed memory kept"); where faults are dear (virtual
// machines) the gain is far larger: `loong tokenize` 5x faster on the
// machine of 2026-12-05. Training calls it with `by_default` false: in
// bench_lm_train the heap grew to 2.4 times the peak for a 10-15% faster
// step, so there it is asked for with LOONG_KEEP_FREED_MEMORY=1.
// Every thread allocates from the main heap (one arena) for the same reason.
// LOONG_KEEP_FREED_MEMORY=0, or glibc's own MALLOC_MMAP_MAX_,
// MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_, leave glibc to decide.
// No-op without glibc. Returns whether it changed anything.
bool keep_freed_memory(bool by_default = true);

// "cpu", "cuda", "cuda:1". Throws loong::Error when the device is unknown or
// this build/machine has no CUDA.
c10::Device parse_device(const std::string& name);

// A one-line description of the build: version, LibTorch, options.
std::string build_info();

}  // namespace loong
