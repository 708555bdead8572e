// `--nproc N`: a data-parallel job on this machine without torchrun. Starts N
// copies of this program as ranks 0..N-1 (RANK, WORLD_SIZE, MASTER_ADDR=
// 127.0.0.1 and a free MASTER_PORT in their environment: the same code path
// as under torchrun) and waits for them.
#pragma once
#include <chrono>
#include <string>
#include <vector>

namespace loong::dist {

// `argv` without the option `name` and its value ("--nproc 2", "--nproc=2").
std::vector<std::string> without_option(const std::vector<std::string>& argv, const std::string& name);

// A TCP port on 127.0.0.1 free at the time of asking.
int free_port();

// Runs the workers; returns 0 when all succeed, else the first failure's exit
// status (128 + signal for a killed rank). Once one rank has failed, the
// others get `grace` to stop on their own (they see the fault at their next
// collective) before they are killed.
int launch_local(int nproc, const std::vector<std::string>& argv, std::chrono::milliseconds grace);

}  // namespace loong::dist
