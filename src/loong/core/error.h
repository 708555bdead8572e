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

// "path: message"
[[noreturn]] void fail(const std::string& where, const std::string& what);

// Shell-safe-ish quoting for messages: 'name'.
std::string squote(const std::string& s);

}  // namespace loong
