#include "loong/core/json_util.h"

#include <cmath>
#include <sstream>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"

namespace loong {

json read_json_file(const std::string& path) {
  std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
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

ObjectReader::ObjectReader(const json& obj, std::string where) : obj_(obj), where_(std::move(where)) {
  if (!obj_.is_object()) fail(where_, "expected a JSON object, got " + json_type_name(obj_));
}

bool ObjectReader::take(const std::string& key) {
  known_.push_back(key);
  return obj_.contains(key);
}

namespace {
template <class T>
std::string range_text(T lo, T hi) {
  std::ostringstream s;
  s << "[" << lo << ", " << hi << "]";
  return s.str();
}
}  // namespace

void ObjectReader::number(const std::string& key, double& v, double lo, double hi) {
  if (!take(key)) return;
  double d = get_number(obj_, key, where_);
  if (d < lo || d > hi) fail(where_, "key " + squote(key) + ": expected a number in " + range_text(lo, hi) + ", got " + obj_[key].dump());
  v = d;
}

void ObjectReader::integer(const std::string& key, long long& v, long long lo, long long hi) {
  if (!take(key)) return;
  long long d = get_int(obj_, key, where_);
  if (d < lo || d > hi)
    fail(where_, "key " + squote(key) + ": expected an integer in " + range_text(lo, hi) + ", got " + std::to_string(d));
  v = d;
}

void ObjectReader::integer(const std::string& key, int& v, int lo, int hi) {
  long long d = v;
  integer(key, d, lo, hi);
  v = static_cast<int>(d);
}

void ObjectReader::integer(const std::string& key, int64_t& v, int64_t lo, int64_t hi) {
  long long d = v;
  integer(key, d, static_cast<long long>(lo), static_cast<long long>(hi));
  v = static_cast<int64_t>(d);
}

void ObjectReader::string(const std::string& key, std::string& v) {
  if (take(key)) v = get_string(obj_, key, where_);
}

void ObjectReader::boolean(const std::string& key, bool& v) {
  if (!take(key)) return;
  if (!obj_[key].is_boolean()) wrong_type(obj_[key], key, where_, "true or false");
  v = obj_[key].get<bool>();
}

bool ObjectReader::objects(const std::string& key, const std::string& expected,
                           const std::function<void(ObjectReader&)>& each) {
  if (!take(key)) return false;
  const auto& a = obj_[key];
  if (!a.is_array() || a.empty()) fail(where_, "key '" + key + "': expected a non-empty array of " + expected);
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string w = where_ + ": " + key + "[" + std::to_string(i) + "]";
    if (!a[i].is_object()) fail(w, "expected a JSON object, got " + json_type_name(a[i]));
    ObjectReader r(a[i], w);
    each(r);
    r.finish();
  }
  return true;
}

void ObjectReader::finish() const {
  for (auto it = obj_.begin(); it != obj_.end(); ++it) {
    bool ok = false;
    for (const auto& k : known_) ok = ok || it.key() == k;
    if (!ok) {
      std::string list;
      for (const auto& k : known_) list += (list.empty() ? "" : ", ") + k;
      fail(where_, "unknown key " + squote(it.key()) + " (known keys: " + list + ")");
    }
  }
}

}  // namespace loong
