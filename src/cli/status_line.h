// Console output for long-running commands: log lines on stdout and, when
// stderr is a terminal, a status line (progress bar) kept under them.
#pragma once
#include <unistd.h>

#include <cstdio>
#include <string>

namespace loong::cli {

class StatusLine {
 public:
  explicit StatusLine(bool quiet = false) : quiet_(quiet), tty_(!quiet && ::isatty(STDERR_FILENO)) {}
  ~StatusLine() { clear(); }

  bool quiet() const { return quiet_; }
  bool tty() const { return tty_; }

  // A log line (printed above the status line).
  void print(const std::string& line) {
    if (tty_ && !bar_.empty()) std::fprintf(stderr, "\r\033[K"), std::fflush(stderr);
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    if (tty_ && !bar_.empty()) std::fprintf(stderr, "%s", bar_.c_str()), std::fflush(stderr);
  }
  // Replaces the status line (terminals only).
  void status(const std::string& s) {
    if (!tty_) return;
    bar_ = s;
    std::fprintf(stderr, "\r\033[K%s", s.c_str());
    std::fflush(stderr);
  }
  void clear() {
    if (tty_ && !bar_.empty()) std::fprintf(stderr, "\r\033[K"), std::fflush(stderr);
    bar_.clear();
  }

 private:
  bool quiet_, tty_;
  std::string bar_;
};

// "[#########.........]" of `width` cells for done/total.
inline std::string bar(double done, double total, int width = 24) {
  const int fill = total > 0 ? static_cast<int>(width * std::min(1.0, done / total)) : 0;
  return "[" + std::string(static_cast<size_t>(fill), '#') + std::string(static_cast<size_t>(width - fill), '.') + "]";
}

}  // namespace loong::cli
