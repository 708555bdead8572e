// A crash in a test prints where it happened: the machines some tests run on
// (the lent GPU machines, CI) have no debugger, and a bare "SegFault" from
// CTest says nothing. glibc's backtrace() is the only tool at hand there, so
// this handler is written by hand; names need the executable's symbols
// exported (ENABLE_EXPORTS in tests/CMakeLists.txt).
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>

namespace {

void print_trace(int sig) {
  const char* head = "\n*** fatal signal in loong_tests; the stack (most recent first):\n";
  (void)!::write(2, head, std::strlen(head));
  void* frames[64];
  const int n = ::backtrace(frames, 64);
  ::backtrace_symbols_fd(frames, n, 2);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

const bool installed = [] {
  void* warm[1];
  ::backtrace(warm, 1);  // loads libgcc's unwinder now, not inside the handler
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) ::signal(sig, print_trace);
  return true;
}();

}  // namespace
