#include "loong/tokenizer/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <torch/torch.h>

#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/io/safetensors.h"

namespace fs = std::filesystem;

namespace loong::tokenizer {

void save_model(const std::string& dir, const VideoTokenizer& model, const std::map<std::string, std::string>& meta) {
  fs::create_directories(dir);
  auto md = meta;
  md["format"] = "loong-video-tokenizer";
  safetensors::save((fs::path(dir) / "model.safetensors").string(), named_tensors(*model), md);
  write_json_file((fs::path(dir) / "config.json").string(), model->config.to_json());
}

VideoTokenizer load_model(const std::string& dir_in, c10::Device device) {
  const std::string dir = resolve_model_dir(dir_in);
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(cfg_path)) fail(dir, "missing config.json next to model.safetensors");
  VideoTokenizer model(TokenizerConfig::load(cfg_path));
  const std::string weights = (fs::path(dir) / "model.safetensors").string();
  std::map<std::string, std::string> meta;
  auto tensors = safetensors::load(weights, &meta);
  auto f = meta.find("format");
  if (f != meta.end() && f->second != "loong-video-tokenizer")
    fail(weights, "this is a " + squote(f->second) + " file, not a video tokenizer");
  load_named_tensors(*model, tensors, weights);
  model->to(device);
  model->eval();
  return model;
}

}  // namespace loong::tokenizer
