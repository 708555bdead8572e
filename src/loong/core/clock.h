// Wall-clock helpers shared by the trainers, the generator and the CLI.
#pragma once
#include <chrono>
#include <string>

namespace loong {

using Clock = std::chrono::steady_clock;

// Seconds from `t0` to now.
inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// "1h02m", "4m05s", "12s"; "?" for a negative or non-finite time.
std::string format_duration(double seconds);

}  // namespace loong
