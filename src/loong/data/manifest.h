// Text-video manifests.
//
// JSONL, one object a line:
//   {"video": "clips/a.mp4", "caption": "a red sneaker ...", "start": 1.5, "end": 9.0}
//   {"image": "stills/b.png", "caption": "a blue bag on a black background"}
// WebVid-style CSV with a header row: a path column (`path`, else `contentUrl`)
// and a caption column (`caption`, else `name`); optional `start`/`end`.
// Relative paths resolve against the manifest's folder. Unknown keys are kept
// in Entry::extra. Every malformed line is reported as "file:line: problem".
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace loong::data {

enum class MediaKind { Video, Image };

struct Entry {
  MediaKind kind = MediaKind::Video;
  std::string path;     // resolved
  std::string caption;
  double start = 0;     // seconds (videos)
  double end = -1;      // seconds, < 0 = to the end
  int line = 0;         // 1-based line in the manifest (CSV: the record's first line)
  nlohmann::json extra = nlohmann::json::object();  // other keys of the line
};

struct Manifest {
  std::string path;
  std::vector<Entry> entries;
  std::vector<std::string> errors;  // "file:line: problem" (only when parsed leniently)
};

// Strict: throws loong::Error listing the first malformed lines and how many
// there were. An empty manifest is an error too.
Manifest load_manifest(const std::string& path);

// Lenient: malformed lines go to Manifest::errors, good lines are kept.
Manifest parse_manifest(const std::string& path);

// "file:line".
std::string where(const Manifest& m, const Entry& e);

}  // namespace loong::data
