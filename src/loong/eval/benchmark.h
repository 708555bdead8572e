// The paper's long-video benchmark (docs/method.md §6): the N longest videos
// of a manifest, each cut to S seconds (the paper: the 1,000 longest WebVid
// validation clips at 27 s), written as a manifest of its own.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace loong::eval {

struct BenchmarkOptions {
  std::string data, out;  // the manifest to choose from; the manifest to write
  int64_t count = 1000;
  double seconds = 27;
};

// Writes `out` (entries keep their captions and extra keys; start/end cut
// them; paths relative to `out`'s folder where they can be) and returns a
// summary: videos kept, longest and shortest kept, too short, unreadable.
nlohmann::json write_long_benchmark(const BenchmarkOptions& o);

}  // namespace loong::eval
