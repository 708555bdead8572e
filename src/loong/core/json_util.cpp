#include "loong/core/json_util.h"

#include <cmath>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"

namespace loong {

json read_json_file(const std::string& path) {
  std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    fail(path, std::string("invalid JSON: ") + e.what());
  }
}

void write_json_file(const std::string& path, const json& j) {
  write_file_atomic(path, j.dump(2) + "\n");
}

std::string json_type_name(const json& j) {
  if (j.is_number_integer()) return "integer";
  if (j.is_number()) return "number";
  return j.type_name();
}

namespace {
const json& require(const json& obj, const std::string& key, const std::string& where,
                    const char* expected) {
  if (!obj.is_object()) fail(where, std::string("expected a JSON object, got ") + json_type_name(obj));
  auto it = obj.find(key);
  if (it == obj.end()) fail(where, "missing key " + squote(key) + " (expected " + expected + ")");
  return *it;
}
[[noreturn]] void wrong_type(const json& v, const std::string& key, const std::string& where,
                             const char* expected) {
  fail(where, "key " + squote(key) + ": expected " + expected + ", got " + json_type_name(v));
}
}  // namespace

std::string get_string(const json& obj, const std::string& key, const std::string& where) {
  const json& v = require(obj, key, where, "a string");
  if (!v.is_string()) wrong_type(v, key, where, "a string");
  return v.get<std::string>();
}

double get_number(const json& obj, const std::string& key, const std::string& where) {
  const json& v = require(obj, key, where, "a number");
  if (!v.is_number()) wrong_type(v, key, where, "a number");
  double d = v.get<double>();
  if (!std::isfinite(d)) wrong_type(v, key, where, "a finite number");
  return d;
}

long long get_int(const json& obj, const std::string& key, const std::string& where) {
  const json& v = require(obj, key, where, "an integer");
  if (!v.is_number_integer()) wrong_type(v, key, where, "an integer");
  return v.get<long long>();
}

}  // namespace loong
