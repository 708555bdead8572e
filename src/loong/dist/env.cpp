#include "loong/dist/env.h"

#include <cstdlib>

#include "loong/core/error.h"

namespace loong::dist {

namespace {

int int_var(const std::function<const char*(const char*)>& get, const char* name, int lo, int hi, int dflt,
            bool required) {
  const char* v = get(name);
  if (!v || !*v) {
    if (required) fail(std::string("environment variable ") + name, "missing");
    return dflt;
  }
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || x < lo || x > hi)
    fail(std::string("environment variable ") + name,
         squote(v) + ": expected a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
  return static_cast<int>(x);
}

}  // namespace

std::string Env::describe() const {
  if (!active()) return "one process";
  return "rank " + std::to_string(rank) + " of " + std::to_string(world_size) + " (" + launcher + ", local rank " +
         std::to_string(local_rank) + ")";
}

Env env_from(const std::function<const char*(const char*)>& get) {
  Env e;
  auto set = [&](const char* n) {
    const char* v = get(n);
    return v && *v;
  };
  constexpr int kMaxRanks = 1 << 20;
  if (set("RANK") || set("WORLD_SIZE")) {
    e.world_size = int_var(get, "WORLD_SIZE", 1, kMaxRanks, 1, true);
    e.rank = int_var(get, "RANK", 0, e.world_size - 1, 0, true);
    e.local_rank = int_var(get, "LOCAL_RANK", 0, kMaxRanks, 0, false);
    e.local_world_size = int_var(get, "LOCAL_WORLD_SIZE", 1, kMaxRanks, 1, false);
    const char* l = get("LOONG_LAUNCHER");
    e.launcher = set("TORCHELASTIC_RUN_ID") ? "torchrun" : (l && *l ? l : "env");
    const bool need_master = e.world_size > 1;
    if (set("MASTER_ADDR")) e.master_addr = get("MASTER_ADDR");
    else if (need_master) fail("environment variable MASTER_ADDR", "missing (the host of rank 0, which the others reach)");
    e.master_port = int_var(get, "MASTER_PORT", 1, 65535, 29500, need_master);
    const char* agent = get("TORCHELASTIC_USE_AGENT_STORE");
    e.agent_store = agent && std::string(agent) == "True";
    e.restart_count = int_var(get, "TORCHELASTIC_RESTART_COUNT", 0, kMaxRanks, 0, false);
    return e;
  }
  // A task of an `srun` step. (A batch script itself also sees SLURM_NTASKS
  // and SLURM_PROCID=0 but is one process: only srun sets the step's count.)
  if (set("SLURM_STEP_NUM_TASKS") && set("SLURM_PROCID")) {
    const int n = int_var(get, "SLURM_STEP_NUM_TASKS", 1, kMaxRanks, 1, true);
    if (n == 1) return e;  // one task (an salloc shell, a one-task step): alone
    e.world_size = n;
    e.rank = int_var(get, "SLURM_PROCID", 0, n - 1, 0, true);
    e.local_rank = int_var(get, "SLURM_LOCALID", 0, kMaxRanks, 0, false);
    e.local_world_size = int_var(get, "SLURM_NTASKS_PER_NODE", 1, kMaxRanks, 1, false);
    e.launcher = "slurm";
    if (!set("MASTER_ADDR"))
      fail("environment variable MASTER_ADDR",
           "missing: a Slurm job of " + std::to_string(n) +
               " tasks needs the address of the first node, e.g. in the job script: export MASTER_ADDR=$(scontrol "
               "show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)");
    e.master_addr = get("MASTER_ADDR");
    e.master_port = int_var(get, "MASTER_PORT", 1, 65535, 29500, false);
    return e;
  }
  return e;
}

Env env_from_process() {
  return env_from([](const char* n) { return static_cast<const char*>(std::getenv(n)); });
}

std::vector<std::pair<std::string, std::string>> worker_env(int rank, int world_size, int port) {
  return {{"RANK", std::to_string(rank)},
          {"WORLD_SIZE", std::to_string(world_size)},
          {"LOCAL_RANK", std::to_string(rank)},
          {"LOCAL_WORLD_SIZE", std::to_string(world_size)},
          {"MASTER_ADDR", "127.0.0.1"},
          {"MASTER_PORT", std::to_string(port)},
          {"LOONG_LAUNCHER", "nproc"}};
}

}  // namespace loong::dist
