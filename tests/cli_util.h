// Running the `loong` binary in tests: its exit status, stdout and stderr,
// and the check that an error is one clear line.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "loong/text/text_tokenizer.h"
#include "test_util.h"

// For tests whose commands make or read a text tokenizer (`model init`,
// `generate`): skipped in builds without SentencePiece (the sanitizer build).
#define LOONG_NEEDS_TEXT_TOKENIZER()                                                    \
  do {                                                                                  \
    std::string why_;                                                                   \
    if (!loong::text::text_tokenizer_available(&why_)) GTEST_SKIP() << "no text tokenizer: " << why_; \
  } while (0)

namespace loong::test {

struct Result {
  int code;
  std::string out, err;
};

// `shell` goes before the command in /bin/sh (limits: "ulimit -f 64; ").
inline Result run(const std::string& args, const std::string& shell = "") {
  const std::string errfile = std::filesystem::temp_directory_path() / ("loong_cli_err_" + std::to_string(::getpid()));
  const std::string cmd = shell + std::string(LOONG_CLI_PATH) + " " + args + " 2>" + errfile;
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.err = loong::test::read_bytes(errfile);
  std::filesystem::remove(errfile);
  return r;
}

inline int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

inline void expect_one_line_error(const Result& r, int code, const std::string& piece) {
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(piece), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("terminate called"), std::string::npos);
  EXPECT_EQ(r.err.find("Exception raised from"), std::string::npos) << "no LibTorch stack trace";
}

}  // namespace loong::test
