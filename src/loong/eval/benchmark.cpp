#include "loong/eval/benchmark.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/data/manifest.h"
#include "loong/io/video.h"

namespace fs = std::filesystem;

namespace loong::eval {

namespace {

// "a/b.mp4" relative to the folder of `out`, when it can be expressed so.
std::string relative_to(const std::string& path, const std::string& out) {
  std::error_code ec;
  auto base = fs::absolute(fs::path(out)).parent_path();
  auto rel = fs::relative(fs::absolute(path), base, ec);
  return ec || rel.empty() ? fs::absolute(path).string() : rel.string();
}

}  // namespace

json write_long_benchmark(const BenchmarkOptions& o) {
  video::require_video_support();  // else every video would count as unreadable
  const auto m = data::load_manifest(o.data);
  struct Candidate {
    const data::Entry* e;
    double length;
  };
  std::vector<Candidate> c;
  int64_t unreadable = 0, too_short = 0;
  for (const auto& e : m.entries) {
    if (e.kind != data::MediaKind::Video) continue;
    double duration = 0;
    try {
      duration = video::probe(e.path, {}, false).duration;
    } catch (const Error&) {
      ++unreadable;
      continue;
    }
    const double end = e.end < 0 ? duration : std::min(e.end, duration);
    const double length = end - e.start;
    if (length + 1e-6 < o.seconds) ++too_short;
    else c.push_back({&e, length});
  }
  if (c.empty())
    fail(o.data, "no video is at least " + std::to_string(o.seconds) + " s long (" + std::to_string(too_short) +
                      " shorter, " + std::to_string(unreadable) + " unreadable)");
  std::stable_sort(c.begin(), c.end(), [](const Candidate& x, const Candidate& y) { return x.length > y.length; });
  if (static_cast<int64_t>(c.size()) > o.count) c.resize(static_cast<size_t>(o.count));
  std::string lines;
  for (const auto& k : c) {
    json j = k.e->extra;
    j["video"] = relative_to(k.e->path, o.out);
    j["caption"] = k.e->caption;
    j["start"] = k.e->start;
    j["end"] = k.e->start + o.seconds;
    lines += j.dump() + "\n";
  }
  write_file_atomic(o.out, lines);
  return {{"out", o.out},
          {"videos", c.size()},
          {"asked", o.count},
          {"seconds", o.seconds},
          {"longest_s", c.front().length},
          {"shortest_kept_s", c.back().length},
          {"too_short", too_short},
          {"unreadable", unreadable}};
}

}  // namespace loong::eval
