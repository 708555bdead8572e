// Core utilities: atomic files, typed JSON access, thread set-up, contact sheets.
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <signal.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "loong/core/atomic_file.h"
#include "loong/core/json_util.h"
#include "loong/core/runtime.h"
#include "loong/io/image.h"
#include "test_util.h"

using loong::test::expect_error;
using loong::test::TempDir;

TEST(AtomicFile, UncommittedWriteLeavesTheOldFileAndNoTemporary) {
  TempDir dir;
  const std::string p = dir / "f.txt";
  loong::write_file_atomic(p, "good");
  {
    loong::AtomicFile f(p);
    loong::test::write_bytes(f.temp_path(), "half-writ");
    // no commit: as if the process died
  }
  EXPECT_EQ(loong::read_file(p), "good");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
  loong::write_file_atomic(dir / "sub/dir/g.txt", "made parents");
  EXPECT_EQ(loong::read_file(dir / "sub/dir/g.txt"), "made parents");
}

TEST(AtomicFile, KilledWritersTemporariesAreRemovedByTheNextWrite) {
  TempDir dir;
  // A process that has ended, as a kill -9 leaves it.
  const pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ASSERT_GT(gone, 0);
  ::waitpid(gone, nullptr, 0);
  const std::string host = loong::host_tag();
  const std::string dead = ".v.mp4.tmp-" + host + "-" + std::to_string(gone) + "-3";
  const std::string other_target = ".w.bin.tmp-" + host + "-" + std::to_string(gone) + "-0";
  const std::string alive = ".v.mp4.tmp-" + host + "-" + std::to_string(::getppid()) + "-0";  // still running
  const std::string elsewhere = ".v.mp4.tmp-" + host + "x-" + std::to_string(gone) + "-0";      // another host
  const std::string someones = ".notes.tmp-" + host + "-" + std::to_string(gone) + "-x";        // not our pattern
  for (const auto& n : {dead, other_target, alive, elsewhere, someones}) loong::test::write_bytes(dir / n, "x");
  std::filesystem::create_directories(dir / "sub");
  loong::test::write_bytes(dir / ("sub/" + dead), "x");  // another folder: not this write's business

  loong::write_file_atomic(dir / "v.mp4", "new");
  auto here = [&](const std::string& n) { return std::filesystem::exists(dir / n); };
  EXPECT_FALSE(here(dead));
  EXPECT_FALSE(here(other_target));  // any target's, in the folder written to
  EXPECT_TRUE(here(alive));
  EXPECT_TRUE(here(elsewhere));
  EXPECT_TRUE(here(someones));
  EXPECT_TRUE(here("sub/" + dead));
  EXPECT_EQ(loong::read_file(dir / "v.mp4"), "new");
}

TEST(Json, TypedAccessNamesFileAndKey) {
  TempDir dir;
  const std::string p = dir / "c.json";
  loong::write_json_file(p, {{"width", "wide"}, {"depth", 3}});
  auto j = loong::read_json_file(p);
  EXPECT_EQ(loong::get_int(j, "depth", p), 3);
  expect_error([&] { loong::get_int(j, "width", p); }, {p, "key 'width'", "expected an integer", "got string"});
  expect_error([&] { loong::get_number(j, "heads", p); }, {p, "missing key 'heads'"});
  loong::test::write_bytes(dir / "bad.json", "{\"a\": 1,,}");
  expect_error([&] { loong::read_json_file(dir / "bad.json"); }, {"bad.json", "invalid JSON"});
}

TEST(Runtime, ThreadsAndDevices) {
  EXPECT_EQ(loong::init_threads(2), 2);
  EXPECT_EQ(at::get_num_threads(), 2);
  setenv("LOONG_THREADS", "abc", 1);
  expect_error([] { loong::init_threads(0); }, {"LOONG_THREADS", "an integer from 1 to 1024"});
  setenv("LOONG_THREADS", "1", 1);
  EXPECT_EQ(loong::init_threads(0), 1);
  EXPECT_TRUE(loong::parse_device("cpu").is_cpu());
  expect_error([] { loong::parse_device("tpu"); }, {"--device", "'tpu'"});
  if (!torch::cuda::is_available()) expect_error([] { loong::parse_device("cuda"); }, {"no CUDA"});
}

// adapt_threads: beside processes busy on every core the count drops to 1;
// a count the user chose (--threads, LOONG_THREADS) or LOONG_ADAPT_THREADS=0
// keeps it.
TEST(Runtime, ThreadsFollowTheLoad) {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  if (cores < 2) GTEST_SKIP() << "one core: nothing to adapt";
  // Under a CPU quota (cgroup v2 cpu.max) of fewer cores than the machine's,
  // the busy children below cannot fill every core.
  if (std::ifstream f("/sys/fs/cgroup/cpu.max"); f) {
    std::string quota;
    double period = 0;
    if (f >> quota >> period && quota != "max" && period > 0 && std::stod(quota) / period < cores)
      GTEST_SKIP() << "a CPU quota of " << std::stod(quota) / period << " cores on " << cores;
  }
  const pid_t parent = getpid();
  const char* env = std::getenv("LOONG_THREADS");
  const std::string saved = env ? env : "";
  const int before = at::get_num_threads();
  unsetenv("LOONG_THREADS");
  unsetenv("LOONG_ADAPT_THREADS");
  std::vector<pid_t> kids;
  for (int i = 0; i < cores; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never left spinning if the test process dies
      if (getppid() != parent) _exit(0);
      volatile unsigned long n = 0;
      for (;;) n = n + 1;
    }
    kids.push_back(pid);
  }
  const auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(400)); };
  EXPECT_EQ(loong::init_threads(0), cores);
  EXPECT_EQ(loong::adapt_threads(), cores) << "too soon after the first look: the count stays";
  settle();
  EXPECT_EQ(loong::adapt_threads(), 1) << "every core busy with other processes";
  EXPECT_EQ(at::get_num_threads(), 1);
  EXPECT_EQ(loong::init_threads(2), 2);
  settle();
  EXPECT_EQ(loong::adapt_threads(), 2) << "--threads is kept";
  setenv("LOONG_ADAPT_THREADS", "0", 1);
  EXPECT_EQ(loong::init_threads(0), cores);
  settle();
  EXPECT_EQ(loong::adapt_threads(), cores) << "LOONG_ADAPT_THREADS=0";
  for (pid_t pid : kids) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  unsetenv("LOONG_ADAPT_THREADS");
  if (!saved.empty()) setenv("LOONG_THREADS", saved.c_str(), 1);
  loong::init_threads(before);
}

TEST(Runtime, KeepFreedMemoryServesLargeTensorsFromTheHeap) {
#if defined(LOONG_SANITIZED)
  GTEST_SKIP() << "the sanitizers' allocator replaces glibc's malloc";
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
  if (std::getenv("MALLOC_MMAP_MAX_") || std::getenv("MALLOC_TRIM_THRESHOLD_"))
    GTEST_SKIP() << "glibc's malloc settings come from the environment";
  setenv("MALLOC_MMAP_MAX_", "65536", 1);
  EXPECT_FALSE(loong::keep_freed_memory()) << "glibc's own settings are left to decide";
  unsetenv("MALLOC_MMAP_MAX_");
  setenv("LOONG_KEEP_FREED_MEMORY", "0", 1);
  EXPECT_FALSE(loong::keep_freed_memory());
  EXPECT_FALSE(loong::keep_freed_memory(false));
  unsetenv("LOONG_KEEP_FREED_MEMORY");
  EXPECT_FALSE(loong::keep_freed_memory(false)) << "the trainers keep glibc's defaults unless asked";
  setenv("LOONG_KEEP_FREED_MEMORY", "1", 1);
  ASSERT_TRUE(loong::keep_freed_memory(false)) << "LOONG_KEEP_FREED_MEMORY=1 asks for it";
  unsetenv("LOONG_KEEP_FREED_MEMORY");
  ASSERT_TRUE(loong::keep_freed_memory());
  const size_t bytes = size_t{64} << 20;
  const auto mapped = mallinfo2().hblkhd;
  {
    auto t = torch::ones({static_cast<int64_t>(bytes / sizeof(float))});
    EXPECT_EQ(mallinfo2().hblkhd, mapped) << "a 64 MB tensor is not mapped on its own";
  }
  EXPECT_GE(mallinfo2().fordblks, bytes) << "its memory stays in the heap once freed";
  // The same on another thread (`loong serve` generates on one): a thread's
  // own arena would map a block over its 64 MB heaps whatever M_MMAP_MAX says.
  std::thread([&] {
    auto t = torch::ones({static_cast<int64_t>(bytes / sizeof(float)) * 3 / 2});
    EXPECT_EQ(mallinfo2().hblkhd, mapped) << "a 96 MB tensor on another thread is not mapped on its own";
  }).join();
#else
  GTEST_SKIP() << "glibc 2.33 or later only";
#endif
}

TEST(ContactSheet, GridLayoutAndFrameChoice) {
  auto clip = loong::test::indexed_clip(10, 8, 6);
  auto sheet = loong::image::contact_sheet(clip, 4, 2);  // 4 frames, 2 columns
  EXPECT_EQ(sheet.size(0), 2 * (8 + 2) + 2);
  EXPECT_EQ(sheet.size(1), 2 * (6 + 2) + 2);
  // First tile is frame 0, last tile is frame 9.
  EXPECT_TRUE(torch::equal(sheet.narrow(0, 2, 8).narrow(1, 2, 6), clip[0]));
  EXPECT_TRUE(torch::equal(sheet.narrow(0, 12, 8).narrow(1, 10, 6), clip[9]));
  EXPECT_EQ(loong::image::spread_indices(10, 4), (std::vector<int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(loong::image::spread_indices(3, 8).size(), 3u);
}

#ifdef LOONG_WITH_PNG
TEST(Png, WritesAValidFile) {
  TempDir dir;
  auto img = loong::test::natural_clip(1, 20, 30)[0];
  loong::image::write_png(dir / "x.png", img);
  std::string b = loong::test::read_bytes(dir / "x.png");
  ASSERT_GT(b.size(), 8u);
  EXPECT_EQ(b.substr(1, 3), "PNG");
  expect_error([&] { loong::image::write_png(dir / "y.png", torch::zeros({4, 4, 3})); }, {"y.png", "uint8"});
}
#endif
