// Files we write (checkpoints, shards, videos, manifests) go to a temporary
// name in the same folder and are renamed over the target only when complete,
// so a crash never leaves a broken file where a good one was. On SIGINT,
// SIGTERM or SIGHUP the temporaries being written are removed as well.
#pragma once
#include <string>
#include <string_view>

namespace loong {

class AtomicFile {
 public:
  // Creates the parent folder if needed. Nothing is written yet.
  explicit AtomicFile(std::string path);
  ~AtomicFile();  // removes the temporary file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Where the writer should put the bytes (same folder as the target).
  const std::string& temp_path() const { return temp_; }
  const std::string& path() const { return path_; }

  // fsync the temporary file, rename it over the target, fsync the folder.
  void commit();

 private:
  std::string path_;
  std::string temp_;
  bool committed_ = false;
  int slot_ = -1;  // registration for removal on SIGINT/SIGTERM/SIGHUP
};

// fsync `from`, rename it over `to`, fsync the folder.
void commit_file(const std::string& from, const std::string& to);

// Writes bytes to path atomically.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Reads a whole file; throws loong::Error naming the path on failure.
std::string read_file(const std::string& path);

// Creates a folder and its parents; throws loong::Error on failure.
void make_dirs(const std::string& path);

}  // namespace loong
