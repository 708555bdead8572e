#include "loong/dist/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "loong/core/clock.h"
#include "loong/core/error.h"
#include "loong/dist/env.h"

extern char** environ;

namespace loong::dist {

std::vector<std::string> without_option(const std::vector<std::string>& argv, const std::string& name) {
  std::vector<std::string> out;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == name) {
      ++i;  // and its value
      continue;
    }
    if (argv[i].rfind(name + "=", 0) == 0) continue;
    out.push_back(argv[i]);
  }
  return out;
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail_input("--nproc", std::string("cannot open a socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    fail_input("--nproc", "cannot find a free port on 127.0.0.1: " + why);
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

int launch_local(int nproc, const std::vector<std::string>& argv, std::chrono::milliseconds grace) {
  if (nproc < 1) fail("--nproc", "expected at least 1 process");
  const int port = free_port();
  // Everything is prepared before fork(): the child only calls execve.
  std::vector<std::vector<std::string>> envs(nproc);
  for (int r = 0; r < nproc; ++r) {
    const auto mine = worker_env(r, nproc, port);
    for (char** e = environ; *e; ++e) {
      const std::string kv = *e;
      bool ours = false;
      for (const auto& [k, v] : mine) ours = ours || kv.rfind(k + "=", 0) == 0;
      if (!ours) envs[r].push_back(kv);
    }
    for (const auto& [k, v] : mine) envs[r].push_back(k + "=" + v);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<pid_t> pids(nproc, -1);
  for (int r = 0; r < nproc; ++r) {
    std::vector<char*> env;
    for (auto& kv : envs[r]) env.push_back(const_cast<char*>(kv.c_str()));
    env.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) fail_input("--nproc", std::string("cannot start a worker: ") + std::strerror(errno));
    if (pid == 0) {
      ::execve("/proc/self/exe", args.data(), env.data());
      ::_exit(127);
    }
    pids[r] = pid;
  }
  int status_out = 0, running = nproc;
  Clock::time_point failed_at{};
  bool any_failed = false, killed = false;
  while (running > 0) {
    int st = 0;
    const pid_t pid = ::waitpid(-1, &st, WNOHANG);
    if (pid > 0) {
      int r = 0;
      while (r < nproc && pids[r] != pid) ++r;
      if (r == nproc) continue;
      pids[r] = -1;
      --running;
      const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      if (code != 0 && !killed) {
        if (WIFSIGNALED(st)) std::fprintf(stderr, "loong: rank %d was killed by signal %d\n", r, WTERMSIG(st));
        if (!any_failed) status_out = code, failed_at = Clock::now();
        any_failed = true;
      }
      continue;
    }
    if (any_failed && !killed && seconds_since(failed_at) * 1000 > grace.count()) {
      for (pid_t p : pids)
        if (p > 0) ::kill(p, SIGKILL);
      std::fprintf(stderr, "loong: the other ranks did not stop within %.0f s of the first failure; killed them\n",
                   grace.count() / 1000.0);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status_out;
}

}  // namespace loong::dist
