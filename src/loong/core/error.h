// Errors are exceptions inside the library and exit codes at the CLI.
// Every message names the input (file, line, key) and what was expected.
#pragma once
#include <stdexcept>
#include <string>

namespace loong {

// A user-facing error: bad input, bad config, unreadable file. The CLI prints
// what() on one line and exits non-zero.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// A bad command line: a flag's value that cannot work. The CLI exits with 2
// for these, 1 for other errors (README, "Errors").
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& msg) : Error(msg) {}
};

// "where: message". A `where` that is a flag ("--fps") makes it a UsageError:
// the flag's value cannot work, whatever the files say.
[[noreturn]] void fail(const std::string& where, const std::string& what);
// The same message as a plain Error (exit 1), for a problem with what a
// flag names rather than with the flag: a missing file, too few videos.
[[noreturn]] void fail_input(const std::string& where, const std::string& what);

// Shell-safe-ish quoting for messages: 'name'.
std::string squote(const std::string& s);

}  // namespace loong
