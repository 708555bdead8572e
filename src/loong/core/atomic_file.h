// Files we write (checkpoints, shards, videos, manifests) go to a temporary
// name in the same folder and are renamed over the target only when complete,
// so a crash never leaves a broken file where a good one was. On SIGINT,
// SIGTERM or SIGHUP the temporaries being written are removed as well; those
// a SIGKILL or a power cut leaves (".NAME.tmp-HOST-PID-N") are removed by the
// next write into the same folder, once the process that made them is gone.
#pragma once
#include <string>
#include <vector>
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

// This machine as temporary names hold it: its host name (letters, digits,
// dots and hyphens; others become '_') and, where /proc tells it, "~" and the
// PID namespace's number, so that containers sharing a name differ.
const std::string& host_tag();

// fsync `from`, rename it over `to`, fsync the folder.
void commit_file(const std::string& from, const std::string& to);

// Writes bytes to path atomically.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Throws loong::Error naming the path unless it is a regular file (or a link
// to one): a folder, a pipe (whose open blocks until a writer comes) or a
// device (/dev/zero never ends) is refused before anything reads it.
void require_regular_file(const std::string& path);

// Reads a whole regular file of at most max_bytes; throws loong::Error naming
// the path on failure. Text inputs (manifests, configs, prompts) are far
// smaller than the default.
constexpr size_t kMaxReadBytes = size_t{1} << 30;
std::string read_file(const std::string& path, size_t max_bytes = kMaxReadBytes);

// Refuses, before any work starts, an output that is also another output or
// an input of the same command, by any name (a link, ./x, a/../x): the
// command would replace a file it was asked to read or write. Each path comes
// with the flag (or argument) that named it, for the message; empty paths are
// skipped.
struct NamedPath {
  std::string name, path;
};
void require_distinct_paths(const std::vector<NamedPath>& outputs, const std::vector<NamedPath>& inputs = {});

// Refuses, before any work starts, an output file that could not be written
// at the end: a folder's name, a file name under a regular file, or a folder
// this process may not write in (the nearest one that exists).
void require_writable_file(const NamedPath& output);

// Creates a folder and its parents; throws loong::Error on failure.
void make_dirs(const std::string& path);

}  // namespace loong
