// Typed access to JSON documents with errors that name the file, line and key
// and say what was expected.
#pragma once
#include <string>

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

}  // namespace loong
