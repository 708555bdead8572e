// Typed access to JSON documents with errors that name the file, line and key
// and say what was expected.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace loong {

using json = nlohmann::json;

// Parses a JSON file; the error names the file and the parser's position.
json read_json_file(const std::string& path);

// Writes pretty JSON atomically.
void write_json_file(const std::string& path, const json& j);

// "string", "integer", "number", "object", ...
std::string json_type_name(const json& j);

// Required typed fields: throws "<where>: key 'k': expected <type>, got <...>".
std::string get_string(const json& obj, const std::string& key, const std::string& where);
double get_number(const json& obj, const std::string& key, const std::string& where);
long long get_int(const json& obj, const std::string& key, const std::string& where);

// Reads the optional keys of a config object into typed fields with range
// checks; finish() rejects keys nobody asked for (typos are errors, not
// silently ignored settings). Errors name `where` and the key.
class ObjectReader {
 public:
  ObjectReader(const json& obj, std::string where);
  void number(const std::string& key, double& v, double lo, double hi);
  void integer(const std::string& key, long long& v, long long lo, long long hi);
  void integer(const std::string& key, int& v, int lo, int hi);
  void integer(const std::string& key, int64_t& v, int64_t lo, int64_t hi);  // counts of steps
  void string(const std::string& key, std::string& v);
  void boolean(const std::string& key, bool& v);
  // An optional non-empty array of objects (`expected` describes one): calls
  // each(reader) for every element with a reader named "<where>: key[i]",
  // then its finish(). Returns whether the key was present.
  bool objects(const std::string& key, const std::string& expected, const std::function<void(ObjectReader&)>& each);
  // Marks a key as known without reading it (the caller handles it).
  bool take(const std::string& key);
  void finish() const;
  const std::string& where() const { return where_; }

 private:
  const json& obj_;
  std::string where_;
  std::vector<std::string> known_;
};

}  // namespace loong
