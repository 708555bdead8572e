// bench_load: `loong generate` with and without one busy competing process,
// per thread policy, runs alternating (issue 38, "Speed under load").
//
//   bench_load [--loong build/bin/loong] [--model models/default] [--seconds 20] [--upscale 4]
//              [--reps 3] [--policies default,threads2,threads1,passive2]
//
// A laptop always has something else running. Each rep runs every policy
// twice, alone and beside a competitor (a forked child spinning on one core,
// started just before and killed just after the run); medians per phase from
// the run's --report (language model: prefill + decode; tokenizer decode and
// encode; upscaling; the library's total) and its wall time. Policies:
//   default    loong's own choice (no LOONG_THREADS: every core, adapting
//              to the load at each phase, core/runtime.h adapt_threads)
//   threadsN   LOONG_THREADS=N (a fixed count; no adapting)
//   passiveN   LOONG_THREADS=N and OMP_WAIT_POLICY=passive (OpenMP threads
//              sleep at once when they wait, instead of spinning first)
// The target: with a competitor, no more than 2x the default's time alone
// (`loaded_vs_default_alone` <= 2). Runs where other processes used more
// than a fifth of a core (measured from /proc/stat minus the runs' own CPU
// time) are marked `noisy`.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "loong/core/json_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Busy CPU seconds of the whole machine so far (/proc/stat: every state but
// idle and iowait; steal counts as taken).
double machine_busy_s() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  f >> cpu;
  std::vector<long long> v;
  long long x;
  while (v.size() < 8 && f >> x) v.push_back(x);
  long long busy = 0;
  for (size_t i = 0; i < v.size(); ++i)
    if (i != 3 && i != 4) busy += v[i];
  return static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double cpu_s(const rusage& u) {
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// A child spinning on one core until killed (dies with this process too).
pid_t start_competitor() {
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    volatile unsigned long long n = 0;
    for (;;) n = n + 1;
  }
  return pid;
}

struct Run {
  json timings;   // the report's timings_s
  double wall = 0, others = 0;  // others: cores other processes used meanwhile
};

Run run_once(const std::string& loong, const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
             bool competitor, const std::string& report) {
  fs::remove(report);
  const double busy0 = machine_busy_s(), t0 = now_s();
  const pid_t comp = competitor ? start_competitor() : -1;
  const pid_t pid = fork();
  if (pid == 0) {
    unsetenv("LOONG_THREADS");
    unsetenv("OMP_WAIT_POLICY");
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    if (FILE* null = std::fopen("/dev/null", "w")) dup2(fileno(null), 1);  // --quiet prints the path
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(loong.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(loong.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  rusage ru{}, cu{};
  wait4(pid, &status, 0, &ru);
  Run r;
  r.wall = now_s() - t0;
  if (comp > 0) {
    kill(comp, SIGKILL);
    wait4(comp, nullptr, 0, &cu);
  }
  const double elapsed = now_s() - t0;
  r.others = (machine_busy_s() - busy0 - cpu_s(ru) - cpu_s(cu)) / elapsed;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("loong generate failed");
  r.timings = loong::read_json_file(report)["timings_s"];
  return r;
}

std::map<std::string, std::string> policy_env(const std::string& p) {
  if (p == "default") return {};
  for (const char* prefix : {"threads", "passive"}) {
    const std::string pre = prefix;
    if (p.rfind(pre, 0) == 0 && p.size() > pre.size() && p.find_first_not_of("0123456789", pre.size()) == std::string::npos) {
      std::map<std::string, std::string> env = {{"LOONG_THREADS", p.substr(pre.size())}};
      if (pre == "passive") env["OMP_WAIT_POLICY"] = "passive";
      return env;
    }
  }
  throw CLI::ValidationError("--policies", "unknown policy '" + p + "' (default, threadsN, passiveN)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("`loong generate` with and without one busy competing process, per thread policy");
  std::string loong = "build/bin/loong", model = "models/default",
              prompt = "a red sneaker moving to the right on a black background";
  double seconds = 20;
  int upscale = 4, reps = 3;
  std::vector<std::string> policies = {"default", "threads2", "threads1", "passive2"};
  app.add_option("--loong", loong, "The loong binary");
  app.add_option("--model", model, "Model bundle");
  app.add_option("--prompt", prompt, "Prompt");
  app.add_option("--seconds", seconds, "Video length")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--upscale", upscale, "Upscaling factor (bicubic), as ./run's demo")->check(CLI::Range(1, 16));
  app.add_option("--reps", reps, "Repetitions; medians are reported")->check(CLI::Range(1, 100));
  app.add_option("--policies", policies, "Comma-separated: default, threadsN, passiveN")->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  try {
    for (const auto& p : policies) policy_env(p);
  } catch (const CLI::Error& e) {
    return app.exit(e);
  }

  const fs::path work = fs::temp_directory_path() / ("bench_load_" + std::to_string(getpid()));
  fs::create_directories(work);
  const std::string out = (work / "v.mp4").string(), report = (work / "r.json").string();
  const std::vector<std::string> args = {"generate", "--model", model, "--prompt", prompt, "--seconds",
                                         std::to_string(seconds), "--upscale", std::to_string(upscale), "--out", out,
                                         "--report", report, "--quiet"};
  const std::vector<std::string> phases = {"lm", "tokenizer_decode", "tokenizer_encode", "upscale", "total", "wall"};
  // samples[policy][loaded][phase]
  std::map<std::string, std::map<bool, std::map<std::string, std::vector<double>>>> samples;
  std::map<std::string, std::map<bool, std::vector<double>>> others;
  run_once(loong, args, {}, false, report);  // warm the page cache
  for (int rep = 0; rep < reps; ++rep)
    for (const auto& p : policies)
      for (bool loaded : {false, true}) {
        const Run r = run_once(loong, args, policy_env(p), loaded, report);
        auto& s = samples[p][loaded];
        s["lm"].push_back(r.timings["prefill"].get<double>() + r.timings["decode"].get<double>());
        for (const char* k : {"tokenizer_decode", "tokenizer_encode", "upscale", "total"})
          s[k].push_back(r.timings[k].get<double>());
        s["wall"].push_back(r.wall);
        others[p][loaded].push_back(r.others);
        std::fprintf(stderr, "rep %d %-9s %-6s total %.2f s (wall %.2f, others %.2f cores)\n", rep, p.c_str(),
                     loaded ? "loaded" : "alone", r.timings["total"].get<double>(), r.wall, r.others);
      }
  fs::remove_all(work);

  json result = {{"bench", "load"},
                 {"cores", sysconf(_SC_NPROCESSORS_ONLN)},
                 {"seconds", seconds},
                 {"upscale", upscale},
                 {"reps", reps},
                 {"model", model},
                 {"policies", json::object()}};
  const auto med = [&](const std::string& p, bool loaded, const std::string& k) {
    return loong::bench::median(samples[p][loaded][k]);
  };
  for (const auto& p : policies) {
    json j;
    for (bool loaded : {false, true}) {
      json m;
      for (const auto& k : phases) m[k] = med(p, loaded, k);
      m["others_cores"] = loong::bench::median(others[p][loaded]);
      m["noisy"] = m["others_cores"].get<double>() > 0.2;
      j[loaded ? "loaded_s" : "alone_s"] = m;
    }
    json ratio, vs_default;
    for (const auto& k : phases) {
      ratio[k] = med(p, true, k) / std::max(med(p, false, k), 1e-9);
      if (samples.count("default")) vs_default[k] = med(p, true, k) / std::max(med("default", false, k), 1e-9);
    }
    j["loaded_vs_alone"] = ratio;
    if (samples.count("default")) j["loaded_vs_default_alone"] = vs_default;
    result["policies"][p] = j;
  }
  std::printf("%s\n", result.dump().c_str());
  return 0;
}
