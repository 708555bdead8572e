#include "loong/store/checkpoints.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>

#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/io/safetensors.h"
#include "loong/ops/adamw.h"

namespace fs = std::filesystem;

namespace loong::store {

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

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

int64_t checkpoint_step(const nlohmann::json& tj, const std::string& json_path, const std::string& checkpoint_dir) {
  const int64_t step = get_int(tj, "step", json_path);
  const std::string folder = fs::path(checkpoint_dir).filename().string();
  const std::string digits = folder.rfind("step-", 0) == 0 ? folder.substr(5) : "";
  const bool named = !digits.empty() && digits.size() <= 15 &&
                     std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (step < 0 || (named && std::stoll(digits) != step))
    fail(json_path, "key 'step': " + std::to_string(step) + " is not the step of its checkpoint folder " + folder);
  return step;
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

void save_optimizer(const std::string& dir, const std::string& stem, const torch::optim::Optimizer& opt) {
  safetensors::save((fs::path(dir) / (stem + ".safetensors")).string(), adamw_state_tensors(opt),
                    {{"format", "loong-adamw"}});
}

void load_optimizer(torch::optim::Optimizer& opt, const std::string& dir, const std::string& stem) {
  const std::string path = (fs::path(dir) / (stem + ".safetensors")).string();
  std::error_code ec;
  if (!fs::exists(path, ec) && fs::exists(fs::path(dir) / (stem + ".pt"), ec))
    fail((fs::path(dir) / (stem + ".pt")).string(),
         "optimizer state in LibTorch's archive format, written by an older loong, is no longer read (a damaged "
         "archive could corrupt memory); start a new run from these weights with --init " + dir);
  std::map<std::string, std::string> meta;
  const auto tensors = safetensors::load(path, &meta);
  if (meta["format"] != "loong-adamw")
    fail(path, "expected optimizer state (metadata format 'loong-adamw'), got " + squote(meta["format"]));
  load_adamw_state(opt, tensors, path);
}

bool has_optimizer(const std::string& dir, const std::string& stem) {
  std::error_code ec;
  return fs::exists(fs::path(dir) / (stem + ".safetensors"), ec) || fs::exists(fs::path(dir) / (stem + ".pt"), ec);
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

void check_init_architecture(nlohmann::json want, nlohmann::json got, const std::string& init_path,
                             const std::string& hint) {
  want.erase("name"), got.erase("name");
  for (const auto& [key, value] : want.items())
    if (!got.contains(key) || got[key] != value)
      fail(init_path, "its model has " + key + " = " + (got.contains(key) ? got[key].dump() : "nothing") +
                          " but the run's config has " + value.dump() + "; " + hint);
}

std::string bundle_part_or_self(const std::string& dir, const std::string& part) {
  std::error_code ec;
  const fs::path p = fs::path(dir) / part;
  return fs::exists(fs::path(dir) / "loong.json", ec) && fs::is_directory(p, ec) ? p.string() : dir;
}

std::vector<nlohmann::json> cut_training_log(const std::string& run_dir, int64_t step) {
  const fs::path path = fs::path(run_dir) / "log.jsonl";
  std::vector<nlohmann::json> kept_records;
  std::error_code ec;
  if (!fs::exists(path, ec)) return kept_records;
  std::istringstream in(read_file(path.string()));
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("step") || !j["step"].is_number_integer()) continue;
    if (j["step"].get<int64_t>() >= step) continue;
    kept += line + "\n";
    kept_records.push_back(std::move(j));
  }
  write_file_atomic(path.string(), kept);
  return kept_records;
}

void prepare_checkpoint_dir(const std::string& run_dir) {
  const fs::path ck = fs::path(run_dir) / "checkpoints";
  make_dirs(ck.string());
  for (const auto& e : fs::directory_iterator(ck))
    if (e.path().extension() == ".partial") fs::remove_all(e.path());
}

void save_model_folder(const std::string& dir, const torch::nn::Module& m, const std::string& format,
                       const nlohmann::json& config, const std::map<std::string, std::string>& metadata,
                       c10::ScalarType float_type) {
  make_dirs(dir);
  auto md = metadata;
  md["format"] = format;
  auto tensors = named_tensors(m);
  for (auto& [name, t] : tensors)
    if (t.is_floating_point() && t.scalar_type() != float_type) t = t.detach().to(float_type);
  safetensors::save((fs::path(dir) / "model.safetensors").string(), tensors, md);
  write_json_file((fs::path(dir) / "config.json").string(), config);
}

std::string model_folder(const std::string& dir_in, const std::string& format, const std::string& what) {
  const std::string dir = resolve_model_dir(dir_in);
  const std::string weights = (fs::path(dir) / "model.safetensors").string();
  const auto meta = safetensors::read_header(weights).metadata;
  auto f = meta.find("format");
  if (f != meta.end() && f->second != format) fail(weights, "this is a " + squote(f->second) + " file, not " + what);
  if (!fs::exists(fs::path(dir) / "config.json")) fail(dir, "missing config.json next to model.safetensors");
  return dir;
}

void load_model_folder(const std::string& dir, torch::nn::Module& m, c10::Device device) {
  const std::string weights = (fs::path(dir) / "model.safetensors").string();
  load_named_tensors(m, safetensors::load(weights), weights);
  m.to(device);
  m.eval();
}

void copy_weights(torch::nn::Module& dst, const torch::nn::Module& src) {
  torch::NoGradGuard ng;
  auto d = named_tensors(dst), s = named_tensors(src);
  TORCH_CHECK(d.size() == s.size(), "copy_weights: modules of different architectures");
  for (size_t i = 0; i < d.size(); ++i) {
    TORCH_CHECK(d[i].first == s[i].first, "copy_weights: ", d[i].first, " against ", s[i].first);
    d[i].second.copy_(s[i].second);
  }
}

namespace {
void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}
}  // namespace

std::string last_good_checkpoint(const std::string& run_dir) {
  const std::string last = newest_checkpoint(run_dir);
  return last.empty() ? std::string("no checkpoint was written yet")
                      : "the last good checkpoint is " + last + " (--resume continues from it)";
}

std::string partial_checkpoint_dir(const std::string& run_dir, int64_t step) {
  return (fs::path(run_dir) / "checkpoints" / (step_name(step) + ".partial")).string();
}

void write_checkpoint(const std::string& run_dir, int64_t step, int keep,
                      const std::function<void(const std::string& dir)>& fill, bool fresh) {
  const fs::path ck = fs::path(run_dir) / "checkpoints";
  const fs::path final_dir = ck / step_name(step);
  const fs::path tmp = partial_checkpoint_dir(run_dir, step);
  if (fresh) fs::remove_all(tmp);
  fs::create_directories(tmp);
  fill(tmp.string());
  // Fault injection for the tests: die as kill -9 would, the checkpoint written but not in place.
  if (const char* k = std::getenv("LOONG_TEST_KILL_IN_CHECKPOINT"); k && std::atoll(k) == step) ::raise(SIGKILL);
  fsync_dir(tmp);
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  fsync_dir(ck);
  auto all = list_checkpoints(run_dir);
  for (size_t i = 0; i + keep < all.size(); ++i) fs::remove_all(all[i].second);
}

}  // namespace loong::store
