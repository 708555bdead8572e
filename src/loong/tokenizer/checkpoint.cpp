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

std::vector<std::pair<std::string, torch::Tensor>> named_tensors(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

void load_named_tensors(torch::nn::Module& m, const std::map<std::string, torch::Tensor>& tensors,
                        const std::string& where, const std::string& prefix) {
  torch::NoGradGuard ng;
  std::set<std::string> used;
  for (auto& [name, dst] : named_tensors(m)) {
    auto it = tensors.find(prefix + name);
    if (it == tensors.end())
      fail(where, "missing tensor " + squote(prefix + name) + " (was this file written for a different model config?)");
    const auto& src = it->second;
    if (src.sizes() != dst.sizes())
      fail(where, "tensor " + squote(prefix + name) + " has shape " + c10::str(src.sizes()) + ", the model expects " +
                      c10::str(dst.sizes()) + " (does config.json match the weights?)");
    if (!src.is_floating_point() && dst.is_floating_point())
      fail(where, "tensor " + squote(prefix + name) + ": expected a floating-point tensor");
    dst.copy_(src);
    used.insert(prefix + name);
  }
  for (const auto& [name, t] : tensors)
    if (name.rfind(prefix, 0) == 0 && !used.count(name))
      fail(where, "unexpected tensor " + squote(name) + " (was this file written for a different model config?)");
}

void save_model(const std::string& dir, const VideoTokenizer& model, const std::map<std::string, std::string>& meta) {
  fs::create_directories(dir);
  auto md = meta;
  md["format"] = "loong-video-tokenizer";
  safetensors::save((fs::path(dir) / "model.safetensors").string(), named_tensors(*model), md);
  write_json_file((fs::path(dir) / "config.json").string(), model->config.to_json());
}

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  const fs::path ck = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(ck, ec)) return out;
  for (const auto& e : fs::directory_iterator(ck, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.rfind("step-", 0) != 0 || name.size() <= 5) continue;
    const std::string digits = name.substr(5);
    if (!std::all_of(digits.begin(), digits.end(), ::isdigit) || digits.size() > 15) continue;
    if (!fs::exists(e.path() / "model.safetensors")) continue;
    out.emplace_back(std::stoll(digits), e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string newest_checkpoint(const std::string& run_dir) {
  auto all = list_checkpoints(run_dir);
  return all.empty() ? "" : all.back().second;
}

std::string resolve_model_dir(const std::string& dir) {
  if (!fs::exists(dir)) fail(dir, "no such model folder");
  if (!fs::is_directory(dir)) fail(dir, "expected a model folder (with model.safetensors and config.json)");
  if (fs::exists(fs::path(dir) / "model.safetensors")) return dir;
  std::string newest = newest_checkpoint(dir);
  if (newest.empty())
    fail(dir, "not a model folder: no model.safetensors here and no checkpoints/step-* inside (expected a "
              "model folder, a checkpoint folder or a training run folder)");
  return newest;
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
