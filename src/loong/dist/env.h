// Where this process stands in a distributed job, read from the launcher's
// environment (docs/distributed.md):
//   torchrun      RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT,
//                 TORCHELASTIC_RUN_ID, TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT
//   Slurm (srun)  SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID, with MASTER_ADDR (and
//                 MASTER_PORT, default 29500) given by the job script
//   by hand       RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (LOCAL_RANK optional)
// With none of these (or a Slurm step of one task) the process runs alone,
// exactly as without any distributed support.
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace loong::dist {

struct Env {
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  // "torchrun", "slurm", "env" (set by hand), "nproc" (loong --nproc)
  // torchrun's agent already hosts the TCP store at MASTER_ADDR:MASTER_PORT;
  // every rank is then a client, under the key prefix of torchrun's attempt.
  bool agent_store = false;
  int restart_count = 0;

  bool active() const { return launcher != "none"; }
  std::string describe() const;  // "rank 1 of 4 (torchrun, local rank 1)"
};

// `get` returns a variable's value or null (std::getenv; tests pass a map).
// Throws loong::Error naming the variable when one is malformed, out of
// range, or needed and missing.
Env env_from(const std::function<const char*(const char*)>& get);
Env env_from_process();

// "RANK=1 WORLD_SIZE=4 ..." for the workers `--nproc N` starts.
std::vector<std::pair<std::string, std::string>> worker_env(int rank, int world_size, int port);

}  // namespace loong::dist
