// loong checkpoint info
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/io/safetensors.h"

namespace fs = std::filesystem;

namespace loong::cli {
namespace {

nlohmann::json describe(const std::string& file) {
  const auto h = safetensors::read_header(file);
  nlohmann::json j = {{"file", file}, {"metadata", h.metadata}, {"tensors", nlohmann::json::array()}};
  uint64_t params = 0, bytes = 0;
  auto tensors = h.tensors;
  std::sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& t : tensors) {
    uint64_t n = 1;
    for (auto d : t.shape) n *= static_cast<uint64_t>(d);
    params += n;
    bytes += t.end - t.begin;
    j["tensors"].push_back({{"name", t.name}, {"dtype", t.dtype}, {"shape", t.shape}});
  }
  j["parameters"] = params;
  j["bytes"] = bytes;
  return j;
}

void print_text(const nlohmann::json& f) {
  std::printf("%s: %zu tensors, %llu parameters, %.2f MB\n", f["file"].get<std::string>().c_str(),
              f["tensors"].size(), f["parameters"].get<unsigned long long>(),
              f["bytes"].get<double>() / 1e6);
  for (const auto& t : f["tensors"])
    std::printf("  %-48s %-5s %s\n", t["name"].get<std::string>().c_str(),
                t["dtype"].get<std::string>().c_str(), t["shape"].dump().c_str());
  if (!f["metadata"].empty()) std::printf("  metadata: %s\n", f["metadata"].dump().c_str());
}

}  // namespace

void add_checkpoint_commands(CLI::App& app, Globals& g) {
  CLI::App* ck = app.add_subcommand("checkpoint", "Inspect weight files (safetensors + config.json)");
  ck->require_subcommand(1);
  auto* cmd = ck->add_subcommand("info", "List tensors (name, dtype, shape) and the config of a file or folder");
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("path", *path, "A .safetensors file or a folder holding them and config.json")->required();
  cmd->add_flag("--json", *as_json, "Print JSON");
  cmd->callback(command(g, [path, as_json] {
    std::error_code ec;
    if (!fs::exists(*path, ec)) fail(*path, "no such file or folder");
    nlohmann::json report = {{"files", nlohmann::json::array()}};
    if (fs::is_directory(*path, ec)) {
      std::vector<std::string> files;
      for (const auto& e : fs::directory_iterator(*path))
        if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
      std::sort(files.begin(), files.end());
      const std::string config = (fs::path(*path) / "config.json").string();
      if (files.empty() && !fs::exists(config)) fail(*path, "no .safetensors files or config.json in this folder");
      for (const auto& f : files) report["files"].push_back(describe(f));
      if (fs::exists(config)) report["config"] = read_json_file(config);
    } else {
      report["files"].push_back(describe(*path));
    }
    if (*as_json) {
      std::cout << report.dump(2) << std::endl;
      return;
    }
    for (const auto& f : report["files"]) print_text(f);
    if (report.contains("config")) std::printf("config.json:\n%s\n", report["config"].dump(2).c_str());
  }));
}

}  // namespace loong::cli
