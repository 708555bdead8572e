#include "loong/data/manifest.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace loong::data {
namespace {

struct LineError {
  std::string message;
};

[[noreturn]] void bad(const std::string& msg) { throw LineError{msg}; }

std::string resolve(const std::string& base_dir, const std::string& p) {
  if (p.find("://") != std::string::npos)
    bad("remote URL " + squote(p) + " is not supported; download it and give the local path");
  fs::path fp(p);
  if (fp.is_absolute() || base_dir.empty()) return fp.lexically_normal().string();
  return (fs::path(base_dir) / fp).lexically_normal().string();
}

bool looks_like_image(const std::string& p) {
  std::string e = fs::path(p).extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp" || e == ".webp";
}

void check_times(Entry& e) {
  if (e.kind == MediaKind::Image && (e.start != 0 || e.end >= 0))
    bad("'start'/'end' apply to videos, not images");
  if (!(e.start >= 0)) bad("'start' must be >= 0 seconds");
  if (e.end >= 0 && e.end <= e.start) bad("'end' must be after 'start'");
}

double number_field(const json& v, const char* key) {
  if (!v.is_number()) bad(std::string("key '") + key + "': expected a number of seconds, got " + v.type_name());
  double d = v.get<double>();
  if (!std::isfinite(d)) bad(std::string("key '") + key + "': expected a finite number");
  return d;
}

Entry parse_json_line(const std::string& text, const std::string& base_dir) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    bad(std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) bad(std::string("expected a JSON object, got ") + j.type_name());
  const bool has_video = j.contains("video"), has_image = j.contains("image");
  if (has_video == has_image) bad("expected exactly one of 'video' or 'image'");
  const char* key = has_video ? "video" : "image";
  Entry e;
  e.kind = has_video ? MediaKind::Video : MediaKind::Image;
  const json& p = j[key];
  if (!p.is_string() || p.get<std::string>().empty())
    bad(std::string("key '") + key + "': expected a non-empty path string");
  e.path = resolve(base_dir, p.get<std::string>());
  if (!j.contains("caption")) bad("missing key 'caption' (expected a string)");
  if (!j["caption"].is_string()) bad(std::string("key 'caption': expected a string, got ") + j["caption"].type_name());
  e.caption = j["caption"].get<std::string>();
  if (j.contains("start")) e.start = number_field(j["start"], "start");
  if (j.contains("end")) e.end = number_field(j["end"], "end");
  check_times(e);
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != key && it.key() != "caption" && it.key() != "start" && it.key() != "end")
      e.extra[it.key()] = it.value();
  return e;
}

// RFC 4180 CSV (quoted fields, "" escapes, newlines inside quotes). Written by
// hand: Debian has no maintained C++ CSV package among our dependencies, and
// this is the whole of what the WebVid files need.
struct CsvRecord {
  std::vector<std::string> fields;
  int line = 0;
};

std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& path) {
  std::vector<CsvRecord> out;
  CsvRecord rec;
  std::string field;
  bool in_quotes = false, field_started = false, any = false;
  int line = 1;
  rec.line = 1;
  auto end_field = [&] {
    rec.fields.push_back(field);
    field.clear();
    field_started = false;
  };
  auto end_record = [&] {
    end_field();
    bool blank = rec.fields.size() == 1 && rec.fields[0].empty();
    if (!blank) out.push_back(rec);
    rec = CsvRecord{};
    rec.line = line;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    any = true;
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"' && !field_started) {
      in_quotes = true;
      field_started = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\r') {
      // tolerate CRLF
    } else if (c == '\n') {
      ++line;
      end_record();
    } else {
      field += c;
      field_started = true;
    }
  }
  if (in_quotes) fail(path + ":" + std::to_string(rec.line), "unterminated quoted field");
  if (any && (!field.empty() || !rec.fields.empty())) end_record();
  return out;
}

Manifest parse_impl(const std::string& path) {
  Manifest m;
  m.path = path;
  const std::string text = read_file(path);
  const std::string base_dir = fs::path(path).parent_path().string();
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  auto record_error = [&](int line, const std::string& msg) {
    m.errors.push_back(path + ":" + std::to_string(line) + ": " + msg);
  };

  if (ext == ".csv") {
    auto records = parse_csv(text, path);
    if (records.empty()) fail(path, "empty CSV (expected a header row)");
    const auto& header = records[0].fields;
    auto column = [&](std::initializer_list<const char*> names) -> int {
      for (const char* n : names)
        for (size_t i = 0; i < header.size(); ++i)
          if (header[i] == n) return static_cast<int>(i);
      return -1;
    };
    const int c_path = column({"path", "contentUrl"}), c_cap = column({"caption", "name"});
    const int c_start = column({"start"}), c_end = column({"end"});
    if (c_path < 0) fail(path + ":1", "CSV header needs a 'path' or 'contentUrl' column");
    if (c_cap < 0) fail(path + ":1", "CSV header needs a 'caption' or 'name' column");
    for (size_t r = 1; r < records.size(); ++r) {
      const auto& rec = records[r];
      try {
        if (rec.fields.size() != header.size())
          bad("expected " + std::to_string(header.size()) + " fields like the header, got " +
              std::to_string(rec.fields.size()));
        Entry e;
        const std::string& p = rec.fields[c_path];
        if (p.empty()) bad("empty path");
        e.path = resolve(base_dir, p);
        e.kind = looks_like_image(p) ? MediaKind::Image : MediaKind::Video;
        e.caption = rec.fields[c_cap];
        auto num = [&](int col, const char* key) {
          const std::string& s = rec.fields[col];
          try {
            size_t used = 0;
            double d = std::stod(s, &used);
            if (used != s.size() || !std::isfinite(d)) throw std::invalid_argument(s);
            return d;
          } catch (const std::exception&) {
            bad(std::string("column '") + key + "': expected a number of seconds, got " + squote(s));
          }
        };
        if (c_start >= 0 && !rec.fields[c_start].empty()) e.start = num(c_start, "start");
        if (c_end >= 0 && !rec.fields[c_end].empty()) e.end = num(c_end, "end");
        check_times(e);
        for (size_t i = 0; i < header.size(); ++i)
          if (static_cast<int>(i) != c_path && static_cast<int>(i) != c_cap &&
              static_cast<int>(i) != c_start && static_cast<int>(i) != c_end)
            e.extra[header[i]] = rec.fields[i];
        e.line = rec.line;
        m.entries.push_back(std::move(e));
      } catch (const LineError& err) {
        record_error(rec.line, err.message);
      }
    }
    return m;
  }

  if (ext != ".jsonl" && ext != ".json" && ext != ".ndjson")
    fail(path, "unknown manifest type " + squote(ext) + " (expected .jsonl or .csv)");
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    try {
      Entry e = parse_json_line(line, base_dir);
      e.line = n;
      m.entries.push_back(std::move(e));
    } catch (const LineError& err) {
      record_error(n, err.message);
    }
  }
  return m;
}

}  // namespace

Manifest parse_manifest(const std::string& path) { return parse_impl(path); }

Manifest load_manifest(const std::string& path) {
  Manifest m = parse_impl(path);
  if (!m.errors.empty()) {
    std::string msg = m.errors[0];
    if (m.errors.size() > 1)
      msg += " (and " + std::to_string(m.errors.size() - 1) +
             " more malformed line(s); `loong data check` lists them all)";
    throw Error(msg);
  }
  if (m.entries.empty()) fail(path, "manifest has no entries");
  return m;
}

std::string where(const Manifest& m, const Entry& e) { return m.path + ":" + std::to_string(e.line); }

}  // namespace loong::data
