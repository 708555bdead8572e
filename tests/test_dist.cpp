// Data-parallel training on c10d (docs/distributed.md): the launchers'
// environments, a two-rank Gloo group in one process (collectives, start-up
// checks, bucketed gradient sums, a rank that never joins), and the CLI on
// two processes: the same run as one process, resume across world sizes, a
// killed rank, a rank with another config, and Debian's torchrun.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <torch/torch.h>

#include "loong/core/clock.h"
#include "loong/core/json_util.h"
#include "loong/dist/env.h"
#include "loong/dist/grad_sync.h"
#include "loong/dist/group.h"
#include "loong/dist/launch.h"
#include "loong/io/safetensors.h"
#include "loong/ops/device.h"
#include "loong/store/checkpoints.h"
#include "loong/tokenizer/trainer.h"
#include "lm_test_data.h"
#include "test_util.h"

using namespace loong;
using loong::test::expect_error;
using loong::test::TempDir;
namespace fs = std::filesystem;

namespace {

dist::Env env_of(const std::map<std::string, std::string>& vars) {
  return dist::env_from([&](const char* n) -> const char* {
    auto it = vars.find(n);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

dist::Env local_env(int rank, int world, int port) {
  dist::Env e;
  e.rank = rank, e.world_size = world, e.local_rank = rank, e.local_world_size = world;
  e.master_addr = "127.0.0.1";
  e.master_port = port;
  e.launcher = "env";
  return e;
}

dist::GroupOptions quick(double seconds) {
  dist::GroupOptions o;
  o.timeout = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  o.heartbeat = std::chrono::milliseconds(200);
  return o;
}

// Runs body(rank) on `world` threads, each with its own group; rethrows the first failure.
void on_ranks(int world, const std::function<void(dist::Group&)>& body, double timeout_s = 30) {
  const int port = dist::free_port();
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        dist::Group g(local_env(r, world, port), quick(timeout_s));
        body(g);
        g.finish();
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r)
    if (!errors[r].empty()) throw Error("rank " + std::to_string(r) + ": " + errors[r]);
}

struct Result {
  int code;
  std::string out, err;
};

// The CLI with extra environment variables; stdout and stderr captured.
Result run_cli(const std::string& args, const std::string& env = "") {
  static std::atomic<int> calls{0};
  const std::string errfile =
      fs::temp_directory_path() / ("loong_dist_err_" + std::to_string(::getpid()) + "_" + std::to_string(calls++));
  const std::string cmd = env + " " + LOONG_CLI_PATH + " " + args + " 2>" + errfile;
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.err = test::read_bytes(errfile);
  fs::remove(errfile);
  return r;
}

std::vector<nlohmann::json> log_of(const std::string& run) {
  std::ifstream in(run + "/log.jsonl");
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

safetensors::TensorMap weights_of(const std::string& run) {
  return safetensors::load(store::newest_checkpoint(run) + "/model.safetensors");
}

// The largest difference of any tensor (the worst one named in the test's output).
double max_diff(const safetensors::TensorMap& a, const safetensors::TensorMap& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  std::string worst;
  for (const auto& [k, t] : a) {
    auto it = b.find(k);
    if (it == b.end()) {
      ADD_FAILURE() << k << " missing";
      continue;
    }
    const double x = (t - it->second).abs().max().item<double>();
    if (x > d) d = x, worst = k;
  }
  if (!worst.empty()) std::printf("  largest difference: %g in %s\n", d, worst.c_str());
  return d;
}

bool same_bits(const safetensors::TensorMap& a, const safetensors::TensorMap& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, t] : a)
    if (!b.count(k) || !torch::equal(t, b.at(k))) return false;
  return true;
}

// Two stages, accumulation, images mixed into clips, caption dropout, Eq. 2's lambda.
std::string write_config(const TempDir& dir, const nlohmann::json& extra = nlohmann::json::object()) {
  loong::test::write_shards(dir / "shards", 12, 12);
  auto j = nlohmann::json::parse(R"({
    "model": {"dim": 32, "n_layers": 2, "n_heads": 4, "ffn_dim": 64, "max_seq_len": 64},
    "stages": [
      {"frames": 1, "steps": 3, "batch_size": 4, "lr": 3e-3, "warmup_steps": 2},
      {"frames": 17, "steps": 3, "batch_size": 4, "grad_accum": 2, "image_fraction": 0.5, "lr": 2e-3,
       "warmup_steps": 1, "lambda": 1.0}],
    "caption_dropout": 0.3, "checkpoint_every": 2, "plot_every": 0, "dist_timeout_s": 30})");
  j["data"] = dir / "shards";
  j.merge_patch(extra);
  const std::string path = dir / ("config-" + std::to_string(std::hash<std::string>()(extra.dump())) + ".json");
  std::ofstream(path) << j.dump(2);
  return path;
}

}  // namespace

TEST(DistEnv, ReadsTorchrunSlurmAndHandSetVariables) {
  EXPECT_FALSE(env_of({}).active());
  auto t = env_of({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                   {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29400"}, {"TORCHELASTIC_RUN_ID", "x"},
                   {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "2"}});
  EXPECT_EQ(t.launcher, "torchrun");
  EXPECT_EQ(t.rank, 3);
  EXPECT_EQ(t.world_size, 8);
  EXPECT_EQ(t.local_rank, 1);
  EXPECT_EQ(t.master_addr, "node0");
  EXPECT_EQ(t.master_port, 29400);
  EXPECT_TRUE(t.agent_store);
  EXPECT_EQ(t.restart_count, 2);

  auto s = env_of({{"SLURM_PROCID", "5"}, {"SLURM_STEP_NUM_TASKS", "6"}, {"SLURM_NTASKS", "6"}, {"SLURM_LOCALID", "1"},
                   {"MASTER_ADDR", "n1"}});
  EXPECT_EQ(s.launcher, "slurm");
  EXPECT_EQ(s.rank, 5);
  EXPECT_EQ(s.world_size, 6);
  EXPECT_EQ(s.master_port, 29500);
  EXPECT_FALSE(s.agent_store);
  // One Slurm task (an salloc shell) is one process, as without Slurm; so is the batch
  // script of a job of many tasks, outside srun.
  EXPECT_FALSE(env_of({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "1"}}).active());
  EXPECT_FALSE(env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}}).active());
  // RANK/WORLD_SIZE win over Slurm's (torchrun inside an allocation).
  EXPECT_EQ(env_of({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"},
                    {"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "4"}})
                .launcher,
            "env");

  expect_error([] { env_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}); },
               {"RANK", "'2'", "0 to 1"});
  expect_error([] { env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}); }, {"MASTER_ADDR", "missing"});
  expect_error([] { env_of({{"RANK", "0"}, {"WORLD_SIZE", "x"}}); }, {"WORLD_SIZE", "'x'"});
  expect_error([] { env_of({{"RANK", "0"}}); }, {"WORLD_SIZE", "missing"});
  expect_error([] { env_of({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "2"}}); }, {"MASTER_ADDR", "scontrol"});

  EXPECT_EQ(dist::without_option({"loong", "train", "--nproc", "2", "--out", "r"}, "--nproc"),
            (std::vector<std::string>{"loong", "train", "--out", "r"}));
  EXPECT_EQ(dist::without_option({"loong", "train", "--nproc=2"}, "--nproc"),
            (std::vector<std::string>{"loong", "train"}));
}

#ifdef LOONG_WITH_DIST

TEST(DistGroup, CollectivesAndStartupChecks) {
  on_ranks(2, [](dist::Group& g) {
    auto t = torch::full({5}, static_cast<float>(g.rank() + 1));
    g.allreduce(t, "test sum");
    EXPECT_TRUE(torch::equal(t, torch::full({5}, 3.0f)));
    auto b = g.root() ? torch::arange(4, torch::kFloat) : torch::zeros({4});
    g.broadcast(b, 0, "test broadcast");
    EXPECT_TRUE(torch::equal(b, torch::arange(4, torch::kFloat)));
    g.barrier("test barrier");
    g.check_same("setup", {{"a", 1}, {"b", {1, 2}}});
    // Rank 1 differs at b[1]: both ranks are told where.
    expect_error([&] { g.check_same("training setup", {{"a", 1}, {"b", {1, g.rank() == 0 ? 2 : 7}}}); },
                 {"rank 1's training setup differs from rank 0's at '/b/1'", "2 on rank 0", "7 on rank 1"});
  });
}

TEST(DistGroup, BucketedGradientsSumToTheWholeBatch) {
  // A small MLP; its gradient over a batch equals the sum of the halves' gradients.
  torch::manual_seed(3);
  auto make = [] {
    return torch::nn::Sequential(torch::nn::Linear(6, 16), torch::nn::Tanh(), torch::nn::Linear(16, 16),
                                 torch::nn::Tanh(), torch::nn::Linear(16, 3));
  };
  auto ref = make();
  auto x = torch::randn({8, 6}), y = torch::randn({8, 3});
  auto loss_of = [](torch::nn::Sequential& m, const torch::Tensor& a, const torch::Tensor& b) {
    return (m->forward(a) - b).pow(2).sum() / 8.0;
  };
  loss_of(ref, x, y).backward();
  std::vector<torch::Tensor> want;
  for (auto& p : ref->parameters()) want.push_back(p.grad().clone());

  std::mutex m;
  on_ranks(2, [&](dist::Group& g) {
    torch::nn::Sequential net{nullptr};
    {
      std::lock_guard<std::mutex> lk(m);
      net = make();
      // Different initial weights on rank 1: the broadcast makes them rank 0's.
      auto src = ref->parameters();
      auto dst = net->parameters();
      torch::NoGradGuard ng;
      for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(g.root() ? src[i] : torch::zeros_like(src[i]));
    }
    dist::broadcast_module(g, *net);
    // Small buckets: several, launched during the backward pass.
    dist::GradSync sync(g, net->parameters(), 256);
    EXPECT_GE(sync.buckets(), 3);
    auto xs = x.chunk(2)[g.rank()], ys = y.chunk(2)[g.rank()];
    // Two passes on this rank (accumulation); only the second is armed.
    loss_of(net, xs.slice(0, 0, 2), ys.slice(0, 0, 2)).backward();
    sync.arm("test step");
    loss_of(net, xs.slice(0, 2), ys.slice(0, 2)).backward();
    sync.finish();
    EXPECT_GE(sync.launched_early(), 1);
    auto got = net->parameters();
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_TRUE(torch::allclose(got[i].grad(), want[i], 1e-5, 1e-6)) << "parameter " << i;
  });
}

TEST(DistGroup, RankThatNeverJoinsIsNamed) {
  const int port = dist::free_port();
  const auto t0 = Clock::now();
  expect_error([&] { dist::Group g(local_env(0, 3, port), quick(1.5)); },
               {"ranks 1 and 2 of 3 did not join within 1.5 s", "MASTER_PORT"});
  EXPECT_LT(seconds_since(t0), 20);
  // A client with nobody hosting the store is told where it looked.
  expect_error([&] { dist::Group g(local_env(1, 2, dist::free_port()), quick(1)); },
               {"cannot reach the rendezvous store", "127.0.0.1:"});
}

TEST(DistTrain, TwoRanksTrainAsOneProcessWithTheWholeBatch) {
  TempDir dir;
  const std::string cfg = write_config(dir);
  auto one = run_cli("train --config " + cfg + " --out " + (dir / "one") + " --quiet");
  ASSERT_EQ(one.code, 0) << one.err;
  auto two = run_cli("train --config " + cfg + " --out " + (dir / "two") + " --nproc 2");
  ASSERT_EQ(two.code, 0) << two.err;
  EXPECT_NE(two.out.find("distributed: 2 ranks (nproc), gloo"), std::string::npos) << two.out;
  // Each rank in passes of one sequence: accumulation absorbs the rest.
  const std::string cfg1 = write_config(dir, {{"micro_batch", 1}});
  auto capped = run_cli("train --config " + cfg1 + " --out " + (dir / "capped") + " --nproc 2 --quiet");
  ASSERT_EQ(capped.code, 0) << capped.err;

  const auto l1 = log_of(dir / "one"), l2 = log_of(dir / "two"), l3 = log_of(dir / "capped");
  ASSERT_EQ(l1.size(), 6u);
  ASSERT_EQ(l2.size(), 6u);
  ASSERT_EQ(l3.size(), 6u);
  for (size_t i = 0; i < l1.size(); ++i) {
    EXPECT_NEAR(l1[i]["loss"].get<double>(), l2[i]["loss"].get<double>(), 1e-5) << "step " << i;
    EXPECT_NEAR(l1[i]["loss"].get<double>(), l3[i]["loss"].get<double>(), 1e-5) << "step " << i;
    EXPECT_NEAR(l1[i]["grad_norm"].get<double>(), l2[i]["grad_norm"].get<double>(), 1e-4) << "step " << i;
    EXPECT_EQ(l1[i]["tokens"], l2[i]["tokens"]) << "tokens/s is global: all ranks' tokens";
    EXPECT_EQ(l1[i]["world_size"], 1);
    EXPECT_EQ(l2[i]["world_size"], 2);
    EXPECT_TRUE(l2[i].contains("comm_ms"));
  }
  EXPECT_LT(max_diff(weights_of(dir / "one"), weights_of(dir / "two")), 1e-4);
  EXPECT_LT(max_diff(weights_of(dir / "one"), weights_of(dir / "capped")), 1e-4);
  EXPECT_FALSE(same_bits(weights_of(dir / "one"), weights_of(dir / "two"))) << "not one process twice";
}

TEST(DistTrain, ResumesAtTheSameAndOtherWorldSizes) {
  TempDir dir;
  const std::string cfg = write_config(dir);
  ASSERT_EQ(run_cli("train --config " + cfg + " --out " + (dir / "whole") + " --nproc 2 --quiet").code, 0);
  // Two ranks, stopped at step 3, resumed on two: bit for bit.
  auto a = run_cli("train --config " + cfg + " --out " + (dir / "two") + " --nproc 2 --stop-at 3 --quiet");
  ASSERT_EQ(a.code, 0) << a.err;
  fs::copy(dir / "two", dir / "two-on-one", fs::copy_options::recursive);
  auto b = run_cli("train --resume " + (dir / "two") + " --nproc 2 --quiet");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_TRUE(same_bits(weights_of(dir / "whole"), weights_of(dir / "two")));
  EXPECT_EQ(log_of(dir / "two").size(), 6u);
  // The two-rank checkpoint resumed on one process, and a one-process one on two ranks.
  auto c = run_cli("train --resume " + (dir / "two-on-one") + " --quiet");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_LT(max_diff(weights_of(dir / "whole"), weights_of(dir / "two-on-one")), 1e-4);
  ASSERT_EQ(run_cli("train --config " + cfg + " --out " + (dir / "one") + " --stop-at 3 --quiet").code, 0);
  auto d = run_cli("train --resume " + (dir / "one") + " --nproc 2 --quiet");
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_LT(max_diff(weights_of(dir / "whole"), weights_of(dir / "one")), 1e-4);
  EXPECT_EQ(log_of(dir / "one").back()["world_size"], 2);
}

TEST(DistTrain, ZeroOneGivesPlainDataParallelsWeightsAndReshards) {
  TempDir dir;
  const std::string plain = write_config(dir), zero = write_config(dir, {{"zero", 1}});
  ASSERT_EQ(run_cli("train --config " + plain + " --out " + (dir / "plain") + " --nproc 2 --quiet").code, 0);
  auto z = run_cli("train --config " + zero + " --out " + (dir / "zero") + " --nproc 2 --quiet");
  ASSERT_EQ(z.code, 0) << z.err;
  // AdamW is elementwise: the shards' updates are the whole optimizer's, bit for bit.
  EXPECT_TRUE(same_bits(weights_of(dir / "plain"), weights_of(dir / "zero")));
  const fs::path ck = store::newest_checkpoint(dir / "zero");
  EXPECT_TRUE(fs::exists(ck / "optimizer-00000-of-00002.safetensors"));
  EXPECT_TRUE(fs::exists(ck / "optimizer-00001-of-00002.safetensors"));
  EXPECT_FALSE(fs::exists(ck / "optimizer.safetensors"));
  // Each shard holds about half of the moments.
  const auto s0 = fs::file_size(ck / "optimizer-00000-of-00002.safetensors"), s1 = fs::file_size(ck / "optimizer-00001-of-00002.safetensors");
  EXPECT_LT(std::abs(double(s0) - double(s1)) / double(s0 + s1), 0.25) << s0 << " vs " << s1;

  // Stopped at step 3 and resumed on two ranks: bit for bit; on one process: the shards gathered.
  auto a = run_cli("train --config " + zero + " --out " + (dir / "part") + " --nproc 2 --stop-at 3 --quiet");
  ASSERT_EQ(a.code, 0) << a.err;
  fs::copy(dir / "part", dir / "part-on-one", fs::copy_options::recursive);
  ASSERT_EQ(run_cli("train --resume " + (dir / "part") + " --nproc 2 --quiet").code, 0);
  EXPECT_TRUE(same_bits(weights_of(dir / "zero"), weights_of(dir / "part")));
  auto c = run_cli("train --resume " + (dir / "part-on-one") + " --quiet");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_LT(max_diff(weights_of(dir / "zero"), weights_of(dir / "part-on-one")), 1e-4);
}

TEST(DistTrain, KilledRankStopsTheOthersWithinTheTimeout) {
  TempDir dir;
  const std::string cfg = write_config(dir, {{"dist_timeout_s", 20}});
  const auto t0 = Clock::now();
  // Rank 1 dies (kill -9) in the middle of the step after the checkpoint at step 4.
  auto r = run_cli("train --config " + cfg + " --out " + (dir / "run") + " --nproc 2 --quiet", "LOONG_TEST_KILL_RANK=1:4");
  const double took = seconds_since(t0);
  EXPECT_NE(r.code, 0);
  EXPECT_LT(took, 20);
  EXPECT_NE(r.err.find("rank 1 was killed by signal 9"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rank 1 stopped responding"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("step-00000004"), std::string::npos) << r.err;  // the last good checkpoint, named
  // The newest checkpoint loads: the run resumes from it.
  EXPECT_EQ(store::newest_checkpoint(dir / "run"), dir / "run/checkpoints/step-00000004");
  auto again = run_cli("train --resume " + (dir / "run") + " --nproc 2 --quiet");
  EXPECT_EQ(again.code, 0) << again.err;
}

TEST(DistTrain, HungRankStopsTheOthersWithinTheTimeout) {
  TempDir dir;
  const std::string cfg = write_config(dir, {{"dist_timeout_s", 4}});
  const auto t0 = Clock::now();
  // Rank 1 stops (SIGSTOP: alive, silent) in step 3; rank 0's all-reduce times out.
  auto r = run_cli("train --config " + cfg + " --out " + (dir / "run") + " --nproc 2 --quiet",
                   "LOONG_TEST_KILL_RANK=1:3:stop");
  EXPECT_NE(r.code, 0);
  EXPECT_LT(seconds_since(t0), 30);  // the timeout, naming the rank, the launcher's grace
  EXPECT_NE(r.err.find("rank 1 stopped responding"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("step-00000002"), std::string::npos) << r.err;
}

TEST(DistTrain, RankWithAnotherConfigIsRefusedAtStartUp) {
  TempDir dir;
  const std::string a = write_config(dir), b = dir / "other.json";
  auto j = read_json_file(a);
  j["stages"][0]["lr"] = 1e-3;
  std::ofstream(b) << j.dump(2);
  // Hand-set variables, as a user without torchrun would.
  const int port = dist::free_port();
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " WORLD_SIZE=2 RANK=";
  std::string out1;
  std::thread second([&] {
    auto r = run_cli("train --config " + b + " --out " + (dir / "run"), env + "1");
    out1 = std::to_string(r.code) + " " + r.err;
  });
  auto r0 = run_cli("train --config " + a + " --out " + (dir / "run"), env + "0");
  second.join();
  EXPECT_EQ(r0.code, 1);
  EXPECT_NE(r0.err.find("rank 1's training setup differs from rank 0's at '/config/stages/0/lr'"), std::string::npos)
      << r0.err;
  EXPECT_EQ(out1.substr(0, 2), "1 ") << out1;
  EXPECT_NE(out1.find("differs from rank 0's"), std::string::npos) << out1;
  EXPECT_TRUE(store::list_checkpoints(dir / "run").empty());
}

// On a GPU machine (scripts/gpu_check.sh runs Cuda.*): the tiny run on CUDA
// under a launcher's environment of one rank, so over NCCL where the build has it.
TEST(DistData, MovingFashionTakesItsPartFromTheLauncher) {
  // `loong data moving-fashion` (and `loong tokenize`, through the same
  // cli::shard_part) under a launcher's environment: each rank its part, the
  // last to finish merges; --shard overrides the environment.
#ifndef LOONG_WITH_FFMPEG
  GTEST_SKIP() << "this build has no FFmpeg (moving-fashion writes MP4s)";
#endif
  TempDir dir;
  const std::string args = " data moving-fashion --videos 3 --seconds 1 --size 32 --quiet --out ";
  auto env = [](int rank) { return "RANK=" + std::to_string(rank) + " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1"; };
  auto r1 = run_cli(args + (dir / "mf"), env(1));
  ASSERT_EQ(r1.code, 0) << r1.err;
  EXPECT_NE(r1.out.find("part 1 of 2"), std::string::npos) << r1.out;
  EXPECT_NE(r1.out.find("1 of 2 parts there so far"), std::string::npos) << r1.out;
  EXPECT_TRUE(fs::exists(dir / "mf/videos/000001.mp4"));
  EXPECT_FALSE(fs::exists(dir / "mf/videos/000000.mp4"));
  auto r0 = run_cli(args + (dir / "mf"), env(0));
  ASSERT_EQ(r0.code, 0) << r0.err;
  EXPECT_NE(r0.out.find("every part is there"), std::string::npos) << r0.out;
  auto whole = run_cli(args + (dir / "whole") + " --shard 0/1", env(1));
  ASSERT_EQ(whole.code, 0) << whole.err;
  EXPECT_EQ(test::read_bytes(dir / "whole/manifest.jsonl"), test::read_bytes(dir / "mf/manifest.jsonl"));
}

TEST(Cuda, TrainsUnderALauncherOnTheGpu) {
  if (!cuda_device_present()) GTEST_SKIP() << "no CUDA device";
  TempDir dir;
  const std::string cfg = write_config(dir);
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(dist::free_port()) +
                          " WORLD_SIZE=1 RANK=0 LOCAL_RANK=0";
  auto r = run_cli("train --config " + cfg + " --out " + (dir / "run") + " --device cuda", env);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("distributed: 1 ranks (env)"), std::string::npos) << r.out;
  std::printf("  %s\n", r.out.substr(r.out.find("distributed:"), 60).c_str());  // nccl or gloo: the record
  // The same run without a launcher: a group of one changes nothing but the clock.
  auto alone = run_cli("train --config " + cfg + " --out " + (dir / "alone") + " --device cuda --quiet");
  ASSERT_EQ(alone.code, 0) << alone.err;
  const auto l = log_of(dir / "run"), a = log_of(dir / "alone");
  ASSERT_EQ(l.size(), 6u);
  ASSERT_EQ(a.size(), 6u);
  for (size_t i = 0; i < l.size(); ++i) {
    EXPECT_EQ(l[i]["world_size"], 1);
    EXPECT_NEAR(l[i]["loss"].get<double>(), a[i]["loss"].get<double>(), 1e-4) << "step " << i + 1;
  }
  EXPECT_LT(max_diff(weights_of(dir / "alone"), weights_of(dir / "run")), 1e-4);
  // The record: each step's tokens/s and communication, with and without the group.
  for (size_t i = 0; i < l.size(); ++i)
    std::printf("  step %zu: group %.0f tok/s, comm %.2f ms; alone %.0f tok/s\n", i + 1,
                l[i]["tokens_per_s"].get<double>(), l[i].value("comm_ms", 0.0), a[i]["tokens_per_s"].get<double>());
}

TEST(DistTrain, UnderDebiansTorchrun) {
  // Debian's interpreter, whatever python3 comes first on PATH.
  if (std::system("/usr/bin/python3 -c 'import torch.distributed.run' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3-torch (torchrun) is not installed";
  // Debian 13's python3-torch 2.6 is built without libuv, yet its torchrun asks TCPStore for a
  // libuv server (the default since 2.4) and cannot start: a packaging fault, not ours.
  if (std::system("/usr/bin/python3 -c 'from torch.distributed import TCPStore; "
                  "TCPStore(\"127.0.0.1\", 0, 1, True)' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "this python3-torch's torchrun cannot start (its TCPStore needs libuv, which the build lacks)";
  TempDir dir;
  const std::string cfg = write_config(dir);
  // Debian 12's torchrun (1.13 under Python 3.11) needs -r 1 -t 1 to start (docs/distributed.md).
  const std::string cmd = "/usr/bin/python3 -m torch.distributed.run --no_python --nproc_per_node 2 -r 1 -t 1 --master_port " +
                          std::to_string(dist::free_port()) + " " + LOONG_CLI_PATH + " train --config " + cfg +
                          " --out " + (dir / "run") + " --quiet >" + (dir / "out.txt") + " 2>&1";
  const int rc = std::system(cmd.c_str());
  ASSERT_EQ(rc, 0) << test::read_bytes(dir / "out.txt");
  const auto l = log_of(dir / "run");
  ASSERT_EQ(l.size(), 6u);
  EXPECT_EQ(l.back()["world_size"], 2);
  ASSERT_EQ(run_cli("train --config " + cfg + " --out " + (dir / "one") + " --quiet").code, 0);
  EXPECT_LT(max_diff(weights_of(dir / "one"), weights_of(dir / "run")), 1e-4);
}

TEST(DistTrain, TokenizerTwoRanksMatchOneProcessWithTheGan) {
  // The micro tokenizer of the trainer's tests, the GAN (with LeCAM) from step 1.
  tokenizer::RunConfig cfg = tokenizer::RunConfig::preset("tiny");
  cfg.model.image_size = 16;
  cfg.model.base_channels = 8;
  // Few codes, all in use: with many dead ones, CVQ re-initialises several to
  // the same feature, and the near-ties between those flip with rounding.
  cfg.model.codebook_size = 8;
  cfg.model.codebook_dim = 8;
  cfg.train.stages = {{1, 3, 4}, {5, 3, 2}};
  cfg.train.lr = 2e-3;
  cfg.train.warmup_steps = 2;
  cfg.train.ema_decay = 0.9;
  cfg.train.sample_every = 0;
  cfg.train.checkpoint_every = 0;
  cfg.train.gan_start = 1;
  cfg.train.disc_warmup_steps = 1;
  cfg.train.lecam_weight = 0.1;
  TempDir dir;
  // One intra-op thread: two ranks in one process share OpenMP's threads, and
  // a reduction split over however many it got rounds differently.
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  // Clips for every step: moving squares on textured backgrounds. (On flat
  // ones, many features are equal and CVQ's choices between equals, code
  // assignments and anchors, flip with the last bit of a sum: batches of
  // another size round differently.)
  std::vector<torch::Tensor> batches;
  std::mt19937_64 rng(5);
  torch::manual_seed(5);
  for (int64_t step = 0; step < cfg.train.total_steps(); ++step) {
    const auto& st = cfg.train.stage_at(step);
    auto clips = torch::randint(0, 120, {st.batch_size, st.frames, 16, 16, 3}).to(torch::kUInt8);
    for (int b = 0; b < st.batch_size; ++b) {
      const int x0 = static_cast<int>(rng() % 8), y0 = static_cast<int>(rng() % 8);
      for (int t = 0; t < st.frames; ++t) clips[b][t].narrow(0, y0, 5).narrow(1, (x0 + t) % 12, 5).fill_(230);
    }
    batches.push_back(clips);
  }

  // Two ranks, each given half of every batch.
  const int port = dist::free_port();
  std::vector<std::shared_ptr<dist::Group>> groups(2);
  std::vector<std::unique_ptr<tokenizer::TokenizerTrainer>> ranks(2);
  std::vector<std::vector<nlohmann::json>> logs(2);
  std::vector<std::string> errors(2);
  auto on_both = [&](const std::function<void(int)>& body) {
    std::vector<std::thread> th;
    for (int r = 0; r < 2; ++r)
      th.emplace_back([&, r] {
        try {
          body(r);
        } catch (const std::exception& e) {
          errors[r] = e.what();
        }
      });
    for (auto& t : th) t.join();
    ASSERT_EQ(errors[0] + errors[1], "");
  };
  on_both([&](int r) {
    groups[r] = std::make_shared<dist::Group>(local_env(r, 2, port), quick(60));
    tokenizer::TrainerOptions o;
    o.run_dir = dir / "two";
    o.group = groups[r];
    ranks[r] = std::make_unique<tokenizer::TokenizerTrainer>(cfg, o);
  });
  auto as_map = [](const torch::nn::Module& m) {
    safetensors::TensorMap out;
    for (auto& [k, v] : store::named_tensors(m)) out[k] = v.detach().clone();
    return out;
  };
  EXPECT_TRUE(same_bits(as_map(*ranks[0]->discriminator()), as_map(*ranks[1]->discriminator())))
      << "rank 1 starts from rank 0's weights";
  EXPECT_TRUE(same_bits(as_map(*ranks[0]->model()), as_map(*ranks[1]->model())));
  // One process with the whole batch. All three start from the same seeded
  // weights (the ranks drew theirs from one generator, concurrently).
  tokenizer::TrainerOptions o1;
  o1.run_dir = dir / "one";
  tokenizer::TokenizerTrainer one(cfg, o1);
  torch::manual_seed(11);
  tokenizer::VideoTokenizer init(cfg.model);
  tokenizer::PatchDiscriminator dinit(cfg.model.in_channels, cfg.train.disc_channels, cfg.train.disc_layers);
  for (auto* t : {&one, ranks[0].get(), ranks[1].get()}) {
    store::copy_weights(*t->model(), *init);
    store::copy_weights(*t->ema_model(), *init);
    store::copy_weights(*t->discriminator(), *dinit);
  }

  on_both([&](int r) {
    for (const auto& b : batches) logs[r].push_back(ranks[r]->step(b.chunk(2)[r].contiguous()));
    ranks[r]->save_checkpoint();
  });
  std::vector<nlohmann::json> ref;
  for (const auto& b : batches) ref.push_back(one.step(b));
  for (size_t i = 0; i < ref.size(); ++i) {
    for (const char* k : {"loss", "l1", "psnr", "codebook", "commitment"})
      EXPECT_NEAR(ref[i][k].get<double>(), logs[0][i][k].get<double>(), 2e-4 * (1 + std::abs(ref[i][k].get<double>())))
          << k << " at step " << i;
    for (const char* k : {"disc", "adaptive_weight", "logits_real", "gan_g"}) {
      if (!ref[i].contains(k)) continue;
      EXPECT_NEAR(ref[i][k].get<double>(), logs[0][i][k].get<double>(), 2e-4 * (1 + std::abs(ref[i][k].get<double>())))
          << k << " at step " << i;
    }
    EXPECT_EQ(ref[i]["codes_used"], logs[0][i]["codes_used"]) << "the whole batch's codes, at step " << i;
    EXPECT_EQ(logs[0][i]["world_size"], 2);
  }
  EXPECT_LT(max_diff(as_map(*one.model()), as_map(*ranks[0]->model())), 1e-3);
  EXPECT_LT(max_diff(as_map(*one.ema_model()), as_map(*ranks[0]->ema_model())), 1e-3);
  EXPECT_TRUE(same_bits(as_map(*ranks[0]->model()), as_map(*ranks[1]->model()))) << "the ranks stay identical";
  EXPECT_EQ(store::newest_checkpoint(dir / "two"), dir / "two/checkpoints/step-00000006");
  on_both([&](int r) { groups[r]->finish(); });
  ranks.clear();
  at::set_num_threads(threads);
}

#endif  // LOONG_WITH_DIST
