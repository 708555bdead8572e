#include "loong/serve/request.h"

#include <algorithm>
#include <cmath>

#include "loong/core/error.h"

namespace loong::serve {

using json = nlohmann::json;

namespace {

// A JSON value of a request field, checked for its type; messages name the
// CLI flag, as every other check does ("--seconds: expected a number ...").
// Written here rather than with ObjectReader (core/json_util.h), whose
// messages name keys of a file, not flags.
std::string shown(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}
double number_of(const json& v, const std::string& option) {
  if (!v.is_number()) fail(option, "expected a number, got " + shown(v));
  return v.get<double>();
}
int64_t integer_of(const json& v, const std::string& option) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) return static_cast<int64_t>(d);
  }
  fail(option, "expected a whole number, got " + shown(v));
}
std::string text_of(const json& v, const std::string& option) {
  if (!v.is_string()) fail(option, "expected text, got " + shown(v));
  return v.get<std::string>();
}

}  // namespace

JobRequest parse_request(const json& body, const ServeOptions& o) {
  if (!body.is_object()) fail("request", "expected a JSON object of fields (docs/serve.md)");
  JobRequest job;
  gen::GenerateRequest& r = job.gen;
  std::string prompt, story;
  bool has_prompt = false, has_story = false;
  for (const auto& [key, v] : body.items()) {
    if (key == "prompt") {
      prompt = text_of(v, "--prompt");
      has_prompt = true;
    } else if (key == "prompts") {
      story = text_of(v, "--prompts");
      has_story = true;
    } else if (key == "seconds") {
      r.seconds = number_of(v, "--seconds");
    } else if (key == "seed") {
      const int64_t seed = integer_of(v, "--seed");
      if (seed < 0) fail("--seed", "must be >= 0, got " + std::to_string(seed));
      r.sampling.seed = static_cast<uint64_t>(seed);
    } else if (key == "cfg") {
      r.sampling.cfg_scale = number_of(v, "--cfg");
      r.given.cfg = true;
    } else if (key == "first_clip_cfg") {
      r.first_clip_cfg = number_of(v, "--first-clip-cfg");
      r.given.first_clip_cfg = true;
    } else if (key == "top_k") {
      r.sampling.top_k = integer_of(v, "--top-k");
    } else if (key == "top_p") {
      r.sampling.top_p = number_of(v, "--top-p");
    } else if (key == "temperature") {
      r.sampling.temperature = number_of(v, "--temperature");
      r.given.temperature = true;
    } else if (key == "upscale") {
      const int64_t u = integer_of(v, "--upscale");
      if (u < 1 || u > o.max_upscale)
        fail("--upscale", "this server allows 1 to " + std::to_string(o.max_upscale) + ", got " + std::to_string(u));
      r.upscale = static_cast<int>(u);
      r.upscale_given = true;
    } else if (key == "upscale_method") {
      r.upscale_method = text_of(v, "--upscale-method");
    } else if (key == "continue_from") {
      job.continue_from = text_of(v, "--init-video");
    } else {
      fail("request", "unknown field " + squote(key) +
                          " (prompt, prompts, seconds, seed, cfg, first_clip_cfg, top_k, top_p, temperature, "
                          "upscale, upscale_method, continue_from)");
    }
  }
  if (has_prompt == has_story)
    fail("--prompt", has_prompt ? "give prompt or prompts (a story), not both" : "required: what the video shows");
  const size_t chars = has_prompt ? prompt.size() : story.size();
  if (chars > o.max_prompt_chars)
    fail(has_prompt ? "--prompt" : "--prompts", "at most " + std::to_string(o.max_prompt_chars) +
                                                   " characters on this server, got " + std::to_string(chars));
  if (std::isfinite(r.seconds) && r.seconds > o.max_seconds)
    fail("--seconds", "this server makes at most " + std::to_string(static_cast<int64_t>(o.max_seconds)) +
                          " s per video, got " + std::to_string(r.seconds));
  gen::validate_settings(r);  // as `loong generate` checks its flags
  r.prompts = has_prompt ? gen::PromptSchedule::single(prompt) : gen::PromptSchedule::parse(story, "--prompts");
  r.prompts.validate(has_prompt ? "--prompt" : "--prompts");
  return job;
}

std::string field_of_option(const std::string& option) {
  if (option == "--init-video") return "continue_from";
  if (option.rfind("--", 0) != 0) return "";
  std::string f = option.substr(2);
  std::replace(f.begin(), f.end(), '-', '_');
  return f;
}

std::string field_of_error(const std::string& message) {
  if (message.rfind("--", 0) != 0) return "";
  const auto end = message.find_first_of(":= ");
  return field_of_option(message.substr(0, end));
}

}  // namespace loong::serve
