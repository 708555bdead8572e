#include "loong/core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
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

bool all_digits(const std::string& s) {  // and fits an int: process ids are at most 4194304
  return !s.empty() && s.size() <= 9 && s.find_first_not_of("0123456789") == std::string::npos;
}

// A SIGKILL gives no handler a chance, so temporaries of killed processes are
// removed here instead: the first time this process writes into a folder, it
// removes ".NAME.tmp-HOST-PID-N" files made on this host (its name and PID
// namespace: host_tag) by processes that no longer exist. A process that still
// runs (or that we may not signal) keeps its files; other hosts' and other
// containers' files (a shared folder) are left alone.
void remove_stale_temporaries(const fs::path& dir) {
  static std::mutex m;
  static std::set<std::string> done;
  {
    std::lock_guard<std::mutex> lock(m);
    if (!done.insert(dir.string()).second) return;
  }
  const std::string mark = ".tmp-" + host_tag() + "-";
  std::error_code ec;
  for (fs::directory_iterator it(dir.empty() ? fs::path(".") : dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t at = name.rfind(mark);
    if (name.size() < 2 || name[0] != '.' || at == std::string::npos || at < 2) continue;
    const std::string tail = name.substr(at + mark.size());  // PID-N
    const size_t dash = tail.find('-');
    if (dash == std::string::npos || !all_digits(tail.substr(0, dash)) || !all_digits(tail.substr(dash + 1))) continue;
    const long pid = std::stol(tail.substr(0, dash));
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code ec2;
    if (fs::is_regular_file(it->symlink_status(ec2))) fs::remove(it->path(), ec2);
  }
}

}  // namespace

const std::string& host_tag() {
  static const std::string tag = [] {
    char buf[256] = {};
    std::string t;
    if (::gethostname(buf, sizeof buf - 1) == 0)
      for (const char* c = buf; *c; ++c)
        t += std::isalnum(static_cast<unsigned char>(*c)) || *c == '.' || *c == '-' ? *c : '_';
    if (t.empty()) t = "host";
    // Containers may share a host name but not their processes: the PID
    // namespace's number tells them apart ("pid:[4026531836]").
    char ns[64] = {};
    const ssize_t n = ::readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    if (n > 0) {
      std::string digits;
      for (ssize_t i = 0; i < n; ++i)
        if (std::isdigit(static_cast<unsigned char>(ns[i]))) digits += ns[i];
      if (!digits.empty()) t += "~" + digits;
    }
    return t;
  }();
  return tag;
}

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
  remove_stale_temporaries(p.parent_path());
  temp_ = (p.parent_path() / ("." + p.filename().string() + ".tmp-" + host_tag() + "-" + std::to_string(::getpid()) +
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

void require_regular_file(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) fail(path, "no such file");
  if (fs::is_directory(st)) fail(path, "expected a file, got a folder");
  if (!fs::is_regular_file(st))
    fail(path, std::string("expected a regular file, got a ") +
                   (fs::is_fifo(st) ? "pipe" : fs::is_socket(st) ? "socket" : "device or special file"));
}

namespace {

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ea, eb;
  if (fs::exists(a, ea) && fs::exists(b, eb)) return fs::equivalent(a, b, ea) && !ea;
  const auto ca = fs::weakly_canonical(fs::absolute(a, ea), ea);
  const auto cb = fs::weakly_canonical(fs::absolute(b, eb), eb);
  return !ea && !eb && ca == cb;  // a path that cannot be resolved is not taken for another
}

}  // namespace

void require_distinct_paths(const std::vector<NamedPath>& outputs, const std::vector<NamedPath>& inputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].path.empty()) continue;
    for (size_t j = 0; j < i; ++j)
      if (!outputs[j].path.empty() && same_file(outputs[i].path, outputs[j].path))
        fail(outputs[i].name, squote(outputs[i].path) + " is also " + outputs[j].name + "; give each output its own file");
    for (const auto& in : inputs)
      if (!in.path.empty() && same_file(outputs[i].path, in.path))
        fail(outputs[i].name, squote(outputs[i].path) + " is also " + in.name + ", which this command reads; "
                              "write to another file");
  }
}

void require_writable_file(const NamedPath& o) {
  if (o.path.empty()) return;
  std::error_code ec;
  const fs::path p(o.path);
  if (p.filename().empty() || fs::is_directory(p, ec))
    fail(o.name, squote(o.path) + " is a folder; expected a file name");
  fs::path dir = fs::absolute(p, ec).parent_path();
  while (!dir.empty() && !fs::exists(dir, ec) && dir != dir.root_path()) dir = dir.parent_path();
  if (!fs::is_directory(dir, ec)) fail(o.name, squote(o.path) + ": " + dir.string() + " is not a folder");
  if (::access(dir.c_str(), W_OK) != 0) fail(o.name, squote(o.path) + ": cannot write in " + dir.string());
}

std::string read_file(const std::string& path, size_t max_bytes) {
  require_regular_file(path);
  auto too_big = [&] {
    fail(path, "larger than " + std::to_string(max_bytes >> 20) + " MB, more than this input can be");
  };
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (!ec && size > max_bytes) too_big();
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
  // Read in pieces up to the bound (the file may grow while it is read).
  std::string out;
  std::string chunk(1 << 16, '\0');
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    out.append(chunk.data(), static_cast<size_t>(in.gcount()));
    if (out.size() > max_bytes) too_big();
  }
  if (in.bad()) fail(path, std::string("read failed: ") + std::strerror(errno));
  return out;
}

}  // namespace loong
