#include "loong/core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "loong/core/error.h"

namespace fs = std::filesystem;

namespace loong {
namespace {

std::atomic<unsigned> g_counter{0};

// Temporary files being written right now, so that SIGINT/SIGTERM/SIGHUP can
// remove them before the process dies (targets are never broken either way;
// this only avoids leaving hidden temporaries behind). The handler only reads
// lock-free atomics and calls unlink(), which is async-signal-safe.
constexpr int kMaxLive = 64;
struct LiveSlot {
  std::atomic<bool> used{false};
  char path[4096];
};
LiveSlot g_live[kMaxLive];
std::mutex g_live_mutex;

void remove_live_temporaries(int sig) {
  for (auto& slot : g_live)
    if (slot.used.load()) ::unlink(slot.path);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_handlers_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction old {};
      if (::sigaction(sig, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) continue;  // keep others' handlers
      struct sigaction sa {};
      sa.sa_handler = remove_live_temporaries;
      sigemptyset(&sa.sa_mask);
      ::sigaction(sig, &sa, nullptr);
    }
  });
}

int register_temporary(const std::string& path) {
  install_handlers_once();
  if (path.size() >= sizeof(LiveSlot::path)) return -1;
  std::lock_guard<std::mutex> lock(g_live_mutex);
  for (int i = 0; i < kMaxLive; ++i) {
    if (!g_live[i].used.load()) {
      std::memcpy(g_live[i].path, path.c_str(), path.size() + 1);
      g_live[i].used.store(true);
      return i;
    }
  }
  return -1;  // more than kMaxLive at once: still atomic, just not cleaned on a signal
}

void unregister_temporary(int slot) {
  if (slot < 0) return;
  std::lock_guard<std::mutex> lock(g_live_mutex);
  g_live[slot].used.store(false);
}

void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) return;  // best effort for folders on odd file systems
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void make_dirs(const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) fail(path, "cannot create folder: " + ec.message());
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  fs::path p(path_);
  if (p.filename().empty()) fail(path_, "expected a file name, got a folder");
  make_dirs(p.parent_path().string());
  temp_ = (p.parent_path() / ("." + p.filename().string() + ".tmp-" + std::to_string(::getpid()) +
                              "-" + std::to_string(g_counter++)))
              .string();
  slot_ = register_temporary(temp_);
}

AtomicFile::~AtomicFile() {
  if (!committed_) {
    std::error_code ec;
    fs::remove(temp_, ec);
  }
  unregister_temporary(slot_);
}

void commit_file(const std::string& from, const std::string& to) {
  fsync_path(from, false);
  if (std::rename(from.c_str(), to.c_str()) != 0)
    fail(to, std::string("cannot rename temporary file into place: ") + std::strerror(errno));
  fs::path parent = fs::path(to).parent_path();
  fsync_path(parent.empty() ? "." : parent.string(), true);
}

void AtomicFile::commit() {
  if (committed_) return;
  if (!fs::exists(temp_)) fail(path_, "nothing was written");
  commit_file(temp_, path_);
  committed_ = true;
  unregister_temporary(slot_);
  slot_ = -1;
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile file(path);
  {
    std::ofstream out(file.temp_path(), std::ios::binary | std::ios::trunc);
    if (!out) fail(path, std::string("cannot open for writing: ") + std::strerror(errno));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) fail(path, "write failed (disk full?)");
  }
  file.commit();
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(path, "no such file");
  if (fs::is_directory(path, ec)) fail(path, "expected a file, got a folder");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace loong
