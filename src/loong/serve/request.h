// A job request of `loong serve` (docs/serve.md, "The HTTP API"): its JSON
// fields onto a gen::GenerateRequest, checked by the code that checks
// `loong generate`'s flags of the same names, so that an error is the CLI's
// one-line message; the field it is about comes from the flag it names.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "loong/gen/generate.h"
#include "loong/serve/studio.h"

namespace loong::serve {

struct JobRequest {
  gen::GenerateRequest gen;   // everything but the paths, the model and the device
  std::string continue_from;  // a result's name ("" = none); not checked against the folder here
};

// Throws loong::Error naming the flag ("--top-k: must be >= 1 ...") for a bad
// field, an unknown one, a missing prompt or what passes this server's limits.
JobRequest parse_request(const nlohmann::json& body, const ServeOptions& limits);

// The JSON field a request uses for a CLI flag ("--top-k" -> "top_k"), and
// the field an error message ("--top-k: must be ...") is about ("" if none).
std::string field_of_option(const std::string& option);
std::string field_of_error(const std::string& message);

}  // namespace loong::serve
