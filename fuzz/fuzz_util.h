// libFuzzer harnesses (docs/reliability.md, scripts/fuzz.sh). The readers under
// test take files, as the CLI gives them, so each input is written to a file in
// a private folder (in /dev/shm when there is one: memory, not the disk).
#pragma once
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "loong/core/error.h"

namespace loong::fuzz {

// A plain array, not a std::string: the clean-up at exit runs after static
// objects are destroyed.
inline const char* private_dir() {
  static char dir[64] = {0};
  if (!dir[0]) {
    std::error_code ec;
    std::snprintf(dir, sizeof dir, "%s/loong-fuzz-%d", std::filesystem::is_directory("/dev/shm", ec) ? "/dev/shm" : "/tmp",
                  static_cast<int>(::getpid()));
    ::mkdir(dir, 0700);
    std::atexit([] {
      std::error_code e;
      std::filesystem::remove_all(dir, e);
    });
  }
  return dir;
}

// A file holding the input, named `name` (its extension picks the reader).
inline std::string input_file(const uint8_t* data, size_t size, const std::string& name) {
  const std::string path = std::string(private_dir()) + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

// Runs fn. loong::Error is the expected answer to bad bytes (the CLI prints it
// on one line); any other exception is a finding, since the CLI would call it
// an internal error: it is left to escape, so the process aborts and libFuzzer
// keeps the input.
template <class F>
int expect_clean(F&& fn) {
  try {
    fn();
  } catch (const loong::Error&) {
  }
  return 0;
}

}  // namespace loong::fuzz
