// Data-parallel training on one machine: `loong train --nproc N` (N ranks of
// one thread each, Gloo over loopback) against one process of N threads, the
// baseline, on the same shards, config and global batch, run after run in
// turns. Reports the median tokens/s of each (every rank's tokens counted:
// tokens/s is global), their ratio, and the share of a step the ranks spent
// waiting on communication the backward pass did not hide (comm_ms / ms).
//
//   bench_dist [--frames 17] [--batch 16] [--steps 8] [--nproc 2] [--rounds 3] [--grid 8]
//
// --memory: per-rank peak memory (RSS) of `--nproc N` with plain data
// parallelism against ZeRO-1 (config key "zero": 1), for a model of about
// 100 M parameters (dim 768, 14 layers) on images, 3 steps each.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "loong/lm/config.h"
#include "loong/lm/shards.h"

namespace fs = std::filesystem;
using namespace loong;

namespace {

struct RunFigures {
  std::vector<double> tokens_per_s, comm_share, comm_ms, ms;
};

void read_log(const fs::path& run, int skip, RunFigures& f) {
  std::ifstream in(run / "log.jsonl");
  std::string line;
  int i = 0;
  while (std::getline(in, line)) {
    if (line.empty() || i++ < skip) continue;
    auto j = nlohmann::json::parse(line);
    f.tokens_per_s.push_back(j["tokens_per_s"].get<double>());
    f.ms.push_back(j["ms"].get<double>());
    if (j.contains("comm_ms")) {
      f.comm_ms.push_back(j["comm_ms"].get<double>());
      f.comm_share.push_back(j["comm_ms"].get<double>() / j["ms"].get<double>());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int frames = 17, batch = 16, steps = 8, nproc = 2, rounds = 3, grid = 8;
  bool memory = false;
  CLI::App app{"Data-parallel training: N ranks x 1 thread against 1 process x N threads"};
  app.add_option("--frames", frames, "Frames per sample")->check(CLI::IsMember({1, 17, 65}));
  app.add_option("--batch", batch, "Global batch (sequences per step)")->check(CLI::Range(1, 1000000));
  app.add_option("--steps", steps, "Timed steps per run (after 2 warm-up steps)")->check(CLI::Range(1, 1000000));
  app.add_option("--nproc", nproc, "Ranks (and the baseline's threads)")->check(CLI::Range(2, 256));
  app.add_option("--rounds", rounds, "Runs of each, in turns")->check(CLI::Range(1, 100));
  app.add_option("--grid", grid, "Latent cells per side of a frame")->check(CLI::Range(1, 64));
  app.add_flag("--memory", memory, "Per-rank peak RSS with and without ZeRO-1 for a ~100 M-parameter model");
  CLI11_PARSE(app, argc, argv);
  const int latent = (frames - 1) / 4 + 1, text_len = 12;

  const fs::path dir = fs::temp_directory_path() / ("loong_bench_dist_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const lm::LmConfig mc = lm::LmConfig::preset("tiny");
  bench::write_random_shards(dir.string(), mc, latent, grid, text_len);
  if (memory) {
    nlohmann::json mcfg = {{"preset", "tiny"},
                           {"model", {{"preset", "tiny"}, {"dim", 768}, {"n_layers", 14}, {"n_heads", 12}, {"ffn_dim", 2048}}},
                           {"data", dir.string()},
                           {"checkpoint_every", 0},
                           {"plot_every", 0},
                           {"stages", {{{"name", "bench"}, {"frames", 1}, {"steps", 3}, {"batch_size", nproc},
                                        {"lr", 1e-4}, {"warmup_steps", 0}}}}};
    nlohmann::json out = {{"bench", "dist_memory"},
                          {"nproc", nproc},
                          {"measured", "rank 0's peak RSS and the bytes of its AdamW moments, after 3 steps"}};
    for (int z = 0; z < 2; ++z) {
      mcfg["zero"] = z;
      const fs::path c = dir / ("memory-" + std::to_string(z) + ".json"), run = dir / ("memory-" + std::to_string(z));
      std::ofstream(c) << mcfg.dump(2);
      const std::string cmd = std::string(LOONG_CLI_PATH) + " --threads 1 train --config " + c.string() + " --out " +
                              run.string() + " --nproc " + std::to_string(nproc) + " --quiet >/dev/null";
      if (std::system(cmd.c_str()) != 0) {
        std::fprintf(stderr, "bench_dist: a training run failed\n");
        return 1;
      }
      std::ifstream in(run / "log.jsonl");
      std::string line, last;
      while (std::getline(in, line))
        if (!line.empty()) last = line;
      const auto j = nlohmann::json::parse(last);
      out[z ? "zero1_peak_rss_mb" : "plain_peak_rss_mb"] = j["peak_rss_mb"];
      out[z ? "zero1_optimizer_state_mb" : "plain_optimizer_state_mb"] = j["optimizer_state_mb"];
    }
    // f32 AdamW moments: 8 bytes a parameter, all of them on every rank without ZeRO-1.
    out["parameters"] = std::round(out["plain_optimizer_state_mb"].get<double>() * (1 << 20) / 8);
    out["saved_mb"] = out["plain_peak_rss_mb"].get<double>() - out["zero1_peak_rss_mb"].get<double>();
    out["ratio"] = out["zero1_peak_rss_mb"].get<double>() / out["plain_peak_rss_mb"].get<double>();
    out["optimizer_state_ratio"] =
        out["zero1_optimizer_state_mb"].get<double>() / out["plain_optimizer_state_mb"].get<double>();
    fs::remove_all(dir);
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  const nlohmann::json cfg = {
      {"preset", "tiny"},
      {"data", dir.string()},
      {"caption_dropout", 0},
      {"checkpoint_every", 0},
      {"plot_every", 0},
      {"stages", {{{"name", "bench"}, {"frames", frames}, {"steps", steps + 2}, {"batch_size", batch}, {"lr", 1e-3},
                   {"warmup_steps", 0}, {"image_fraction", 0.0}}}}};
  std::ofstream(dir / "config.json") << cfg.dump(2);

  RunFigures one, dp;
  for (int r = 0; r < rounds; ++r) {
    const fs::path a = dir / ("one-" + std::to_string(r)), b = dir / ("dp-" + std::to_string(r));
    const std::string base = std::string(LOONG_CLI_PATH) + " --threads ";
    const std::string tail = " train --config " + (dir / "config.json").string() + " --quiet >/dev/null";
    if (std::system((base + std::to_string(nproc) + tail + " --out " + a.string()).c_str()) != 0 ||
        std::system((base + "1" + tail + " --out " + b.string() + " --nproc " + std::to_string(nproc)).c_str()) != 0) {
      std::fprintf(stderr, "bench_dist: a training run failed\n");
      return 1;
    }
    read_log(a, 2, one);
    read_log(b, 2, dp);
  }
  fs::remove_all(dir);
  const double t1 = bench::median(one.tokens_per_s), tn = bench::median(dp.tokens_per_s);
  nlohmann::json out = {{"bench", "dist"},
                        {"preset", "tiny"},
                        {"parameters", mc.parameter_count()},
                        {"frames", frames},
                        {"grid", grid},
                        {"global_batch", batch},
                        {"nproc", nproc},
                        {"steps", steps},
                        {"rounds", rounds},
                        {"one_process_threads", nproc},
                        {"one_process_tokens_per_s", t1},
                        {"one_process_step_ms", bench::median(one.ms)},
                        {"ranks_tokens_per_s", tn},
                        {"ranks_step_ms", bench::median(dp.ms)},
                        {"ratio", tn / t1},
                        {"comm_ms", bench::median(dp.comm_ms)},
                        {"comm_share", bench::median(dp.comm_share)}};
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
