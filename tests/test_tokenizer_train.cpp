// Tokenizer training: run configs, the trainer's losses and logs, atomic and
// resumable checkpoints, model folders, chunked encoding, token files and
// the PSNR/SSIM metrics.
#include <sstream>
#include <filesystem>
#include <fstream>

#include <torch/script.h>
#include <torch/torch.h>

#include "loong/core/json_util.h"
#include "loong/eval/metrics.h"
#include "loong/io/safetensors.h"
#include "loong/tokenizer/checkpoint.h"
#include "loong/tokenizer/tokens.h"
#include "loong/tokenizer/train_config.h"
#include "loong/tokenizer/trainer.h"
#include "test_util.h"

using namespace loong::tokenizer;
using loong::test::expect_error;
using loong::test::TempDir;
namespace fs = std::filesystem;

namespace {

RunConfig micro_run() {
  RunConfig c = RunConfig::preset("tiny");
  c.model.name = "micro";
  c.model.image_size = 16;
  c.model.base_channels = 8;
  c.model.codebook_size = 64;
  c.model.codebook_dim = 8;
  c.train.stages = {{1, 3, 4}, {5, 3, 2}};
  c.train.lr = 2e-3;
  c.train.warmup_steps = 2;
  c.train.ema_decay = 0.9;
  c.train.sample_every = 0;
  c.train.checkpoint_every = 0;
  return c;
}

// Deterministic clips for a step: moving bright squares on a random background.
torch::Tensor synthetic(int frames, int batch, std::mt19937_64& rng) {
  auto out = torch::zeros({batch, frames, 16, 16, 3}, torch::kUInt8);
  for (int b = 0; b < batch; ++b) {
    const int bg = static_cast<int>(rng() % 120), x0 = static_cast<int>(rng() % 8), y0 = static_cast<int>(rng() % 8);
    out[b].fill_(bg);
    for (int t = 0; t < frames; ++t) {
      const int x = (x0 + t) % 12, y = y0;
      out[b][t].narrow(0, y, 5).narrow(1, x, 5).fill_(230);
    }
  }
  return out;
}

std::vector<nlohmann::json> read_log(const std::string& path) {
  std::ifstream f(path);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(f, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

bool same_weights(const torch::nn::Module& a, const torch::nn::Module& b) {
  auto x = named_tensors(a), y = named_tensors(b);
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i].first != y[i].first || !torch::equal(x[i].second, y[i].second)) return false;
  return true;
}

// A micro run trained for its 6 steps in RUN_DIR (what the fine-tuning tests give --init):
// its exported EMA weights.
VideoTokenizer trained_micro(const fs::path& run_dir) {
  torch::manual_seed(0);
  TrainerOptions o;
  o.run_dir = run_dir;
  TokenizerTrainer trainer(micro_run(), o);
  trainer.run(synthetic);
  return trainer.ema_model();
}

}  // namespace

TEST(TrainConfig, PresetsOverridesAndErrors) {
  TempDir dir;
  auto tiny = RunConfig::load("tiny");
  EXPECT_EQ(tiny.model.image_size, 64);
  ASSERT_EQ(tiny.train.stages.size(), 3u);
  EXPECT_EQ(tiny.train.stages[0].frames, 1);
  EXPECT_EQ(tiny.train.stages[1].frames, 17);
  EXPECT_EQ(tiny.train.stages[2].frames, 65);
  auto paper = RunConfig::load("paper");
  EXPECT_EQ(paper.model.image_size, 128);
  EXPECT_EQ(paper.model.codebook_size, 8192);
  EXPECT_GE(paper.train.gan_start, 0);

  // Round trip, and overrides on top of a preset.
  auto j = tiny.to_json();
  EXPECT_EQ(RunConfig::from_json(j, "x").to_json(), j);
  loong::test::write_bytes(dir / "c.json",
                           R"({"preset": "paper", "model": {"codebook_size": 4096}, "train": {"lr": 0.002}})");
  auto c = RunConfig::load(dir / "c.json");
  EXPECT_EQ(c.model.codebook_size, 4096);
  EXPECT_EQ(c.model.image_size, 128);
  EXPECT_DOUBLE_EQ(c.train.lr, 0.002);
  EXPECT_EQ(c.train.stages.size(), 3u);

  auto bad = [&](const std::string& text, std::vector<std::string> pieces) {
    loong::test::write_bytes(dir / "bad.json", text);
    pieces.insert(pieces.begin(), "bad.json");
    expect_error([&] { RunConfig::load(dir / "bad.json"); }, pieces);
  };
  bad(R"({"train": {"lrr": 0.1}})", {"train", "unknown key 'lrr'"});
  bad(R"({"train": {"lr": "fast"}})", {"key 'lr'", "expected a number"});
  bad(R"({"train": {"lr": 5}})", {"key 'lr'", "[0, 1]"});
  bad(R"({"train": {"stages": [{"frames": 16, "steps": 10, "batch_size": 2}]}})", {"stages[0].frames", "1 + 4k"});
  bad(R"({"train": {"stages": [{"frames": 17, "steps": 10, "batch": 2}]}})", {"stages[0]", "unknown key 'batch'"});
  bad(R"({"train": {"stages": []}})", {"key 'stages'", "non-empty"});
  bad(R"({"train": {"gan_loss": "wasserstein"}})", {"gan_loss", "hinge"});
  bad(R"({"train": {"gan_start": 10, "disc_warmup_steps": 20}})", {"disc_warmup_steps", "gan_start 10"});
  bad(R"({"train": {"disc_warmup_steps": 20}})", {"disc_warmup_steps", "gan_start -1"});
  bad(R"({"train": {"perceptual_model": "/nonexistent/lpips.pt"}})", {"perceptual_model", "no such file"});
  bad(R"({"model": {"codebook_size": -3}})", {"model", "codebook_size"});
  bad(R"({"preset": "huge"})", {"unknown tokenizer preset 'huge'"});
  bad(R"({"modle": {}})", {"unknown key 'modle'"});
  bad(R"([1, 2])", {"expected a JSON object"});
  expect_error([&] { RunConfig::load(dir / "missing.json"); }, {"missing.json", "no such config file"});
}

TEST(TrainConfig, ScheduleAndStages) {
  TrainConfig t;
  t.stages = {{1, 100, 8}, {17, 200, 2}, {65, 100, 1}};
  t.warmup_steps = 10;
  t.stage_warmup_steps = 0;
  t.min_lr_ratio = 0.1;
  EXPECT_EQ(t.total_steps(), 400);
  EXPECT_EQ(t.stage_at(0).frames, 1);
  EXPECT_EQ(t.stage_at(99).frames, 1);
  EXPECT_EQ(t.stage_at(100).frames, 17);
  EXPECT_EQ(t.stage_at(399).frames, 65);
  EXPECT_NEAR(t.lr_factor(0), 0.1, 1e-12);   // warm-up starts small
  EXPECT_NEAR(t.lr_factor(9), 1.0, 1e-12);   // ... and reaches the peak
  EXPECT_NEAR(t.lr_factor(10), 1.0, 1e-12);  // cosine starts at the peak
  EXPECT_NEAR(t.lr_factor(400), 0.1, 1e-12); // ... and ends at min_lr_ratio
  for (int64_t s = 10; s < 400; ++s) EXPECT_LE(t.lr_factor(s + 1), t.lr_factor(s) + 1e-12);
  // With a ramp at each later stage: the stage's first step is small, the
  // ramp ends back on the cosine, and the first stage is unchanged.
  auto ramped = t;
  ramped.stage_warmup_steps = 20;
  for (int64_t s : {0, 9, 50, 99, 120, 150, 299, 320, 399}) EXPECT_NEAR(ramped.lr_factor(s), t.lr_factor(s), 1e-12) << s;
  EXPECT_NEAR(ramped.lr_factor(100), t.lr_factor(100) / 20, 1e-12);
  EXPECT_NEAR(ramped.lr_factor(109), t.lr_factor(109) * 10 / 20, 1e-12);
  EXPECT_NEAR(ramped.lr_factor(300), t.lr_factor(300) / 20, 1e-12);
  // A stage's lr_scale multiplies its part of the schedule.
  auto scaled = t;
  scaled.stages[1].lr_scale = 0.25;
  EXPECT_NEAR(scaled.lr_factor(99), t.lr_factor(99), 1e-12);
  EXPECT_NEAR(scaled.lr_factor(150), t.lr_factor(150) * 0.25, 1e-12);
  EXPECT_NEAR(scaled.lr_factor(300), t.lr_factor(300), 1e-12);
  auto back = TrainConfig::from_json(scaled.to_json(), "t.json");
  EXPECT_EQ(back.stages[1].lr_scale, 0.25);
}

TEST(Trainer, LogsEveryStepAndWritesACompleteCheckpoint) {
  TempDir dir;
  torch::manual_seed(0);
  auto cfg = micro_run();
  cfg.train.gan_start = 2;          // the generator's GAN term from step 2,
  cfg.train.disc_warmup_steps = 1;  // the discriminator alone at step 1
  TrainerOptions o;
  o.run_dir = dir / "run";
  TokenizerTrainer trainer(cfg, o);
  EXPECT_EQ(trainer.run(synthetic), 6);
  auto log = read_log(dir / "run/log.jsonl");
  ASSERT_EQ(log.size(), 6u);
  for (size_t i = 0; i < log.size(); ++i) {
    const auto& r = log[i];
    EXPECT_EQ(r["step"], i);
    EXPECT_EQ(r["frames"], i < 3 ? 1 : 5);
    for (const char* k : {"loss", "l1", "codebook", "commitment", "psnr", "perplexity", "usage", "ms", "frames_per_s",
                          "lr", "grad_norm", "live_codes"}) {
      ASSERT_TRUE(r.contains(k)) << k;
      EXPECT_TRUE(std::isfinite(r[k].get<double>())) << k;
    }
    EXPECT_EQ(r.contains("disc"), i >= 1) << i;
    EXPECT_EQ(r.contains("gan_g"), i >= 2) << i;
    if (i == 1) {
      EXPECT_EQ(r["adaptive_weight"].get<double>(), 0);
    }
    if (i >= 2) {
      EXPECT_GT(r["adaptive_weight"].get<double>(), 0);
      EXPECT_TRUE(std::isfinite(r["gan_g"].get<double>()));
    }
    if (i >= 3) {
      EXPECT_TRUE(r.contains("lecam"));  // once the EMAs exist
    }
  }
  // The final checkpoint is a model folder holding the EMA weights.
  auto ck = newest_checkpoint(o.run_dir);
  EXPECT_EQ(fs::path(ck).filename(), "step-00000006");
  for (const char* f : {"model.safetensors", "config.json", "trainer.safetensors", "optimizer.safetensors",
                        "disc_optimizer.safetensors", "trainer.json"})
    EXPECT_TRUE(fs::exists(fs::path(ck) / f)) << f;
  auto loaded = load_model(o.run_dir);
  EXPECT_TRUE(same_weights(*loaded, *trainer.ema_model()));
  EXPECT_FALSE(same_weights(*loaded, *trainer.model()));  // EMA differs from the raw weights

  // Starting again in the same folder without --resume is refused.
  expect_error([&] { TokenizerTrainer again(cfg, o); }, {"already holds checkpoints", "--resume"});
}

TEST(Trainer, InitStartsFromAnotherModelsWeights) {
  TempDir dir;
  auto cfg = micro_run();
  const auto first = trained_micro(dir / "first");

  // A new run from the first one's exported (EMA) weights, with other losses.
  auto tuned = cfg;
  tuned.train.gan_start = 0;
  tuned.train.stages = {{1, 2, 4}};
  TrainerOptions t;
  t.run_dir = dir / "tuned";
  t.init_model = dir / "first";
  torch::manual_seed(1);  // a random initialisation would differ
  TokenizerTrainer second(tuned, t);
  EXPECT_TRUE(same_weights(*second.model(), *first));
  EXPECT_TRUE(same_weights(*second.ema_model(), *first));
  EXPECT_EQ(second.run(synthetic), 2);
  EXPECT_FALSE(same_weights(*second.model(), *first));  // and it trains from there

  // A packed bundle (`loong model pack`: loong.json beside tokenizer/, f16 as the default model's)
  // gives its tokenizer, widened back to f32.
  const fs::path bundle = dir / "bundle";
  fs::create_directories(bundle);
  loong::write_json_file((bundle / "loong.json").string(), {{"format", "loong-model"}});
  save_model((bundle / "tokenizer").string(), first, {}, torch::kHalf);
  t.init_model = bundle;
  t.run_dir = dir / "from-bundle";
  TokenizerTrainer third(tuned, t);
  auto pa = named_tensors(*third.model()), pb = named_tensors(*first);
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    if (!pa[i].second.is_floating_point()) continue;
    EXPECT_EQ(pa[i].second.scalar_type(), torch::kFloat) << pa[i].first;
    EXPECT_TRUE(torch::equal(pa[i].second, pb[i].second.to(torch::kHalf).to(torch::kFloat))) << pa[i].first;
  }

  // Another architecture is named; --init with --resume is refused before anything is written.
  auto other = cfg;
  other.model.codebook_size = 32;
  t.run_dir = dir / "other";
  expect_error([&] { TokenizerTrainer x(other, t); }, {"bundle", "codebook_size = 64", "32", "--init"});
  EXPECT_FALSE(fs::exists(dir / "other")) << "a refused --init writes nothing";
  t.resume = true;
  t.run_dir = dir / "both";
  expect_error([&] { TokenizerTrainer x(tuned, t); }, {"--init", "--resume"});
  EXPECT_FALSE(fs::exists(dir / "both"));
  t.resume = false;
  t.init_model = dir / "missing";
  t.run_dir = dir / "missing-run";
  expect_error([&] { TokenizerTrainer x(tuned, t); }, {"missing"});
  EXPECT_FALSE(fs::exists(dir / "missing-run"));
}

TEST(Trainer, DecoderOnlyKeepsTheEncoderCodebookAndCodes) {
  TempDir dir;
  const auto first = trained_micro(dir / "first");

  auto tuned = micro_run();
  tuned.train.decoder_only = true;
  tuned.train.gan_start = 1;
  tuned.train.disc_warmup_steps = 1;
  tuned.train.stages = {{1, 2, 4}, {5, 2, 2}};
  TrainerOptions t;
  t.run_dir = dir / "tuned";
  t.init_model = dir / "first";
  TokenizerTrainer second(tuned, t);
  EXPECT_EQ(second.run(synthetic), 4);

  // Encoder, codebook and the quantizer's usage are those of --init, bit for bit, in the raw
  // weights and in the exported EMA ones; the decoder has trained.
  auto before = named_tensors(*first);
  for (const auto& m : {second.model(), load_model(t.run_dir)}) {
    auto after = named_tensors(*m);
    ASSERT_EQ(after.size(), before.size());
    int decoder_changed = 0;
    for (size_t i = 0; i < after.size(); ++i) {
      const auto& name = after[i].first;
      if (name.rfind("decoder.", 0) == 0)
        decoder_changed += !torch::equal(after[i].second, before[i].second);
      else
        EXPECT_TRUE(torch::equal(after[i].second, before[i].second)) << name;
    }
    EXPECT_GT(decoder_changed, 0);
  }
  // So a video gets the same codes as before, and decodes differently.
  std::mt19937_64 rng(3);
  auto x = synthetic(5, 2, rng).permute({0, 4, 1, 2, 3}).to(torch::kFloat).div(127.5).sub(1.0);
  torch::NoGradGuard ng;
  auto old_model = first, new_model = load_model(t.run_dir);
  old_model->eval();
  auto ids = old_model->encode(x);
  EXPECT_TRUE(torch::equal(new_model->encode(x), ids));
  EXPECT_FALSE(torch::equal(new_model->decode(ids), old_model->decode(ids)));

  // Without a tokenizer to start from there is no encoder to keep: refused before anything is written.
  t.init_model.clear();
  t.run_dir = dir / "no-init";
  expect_error([&] { TokenizerTrainer x(tuned, t); }, {"decoder_only", "--init"});
  EXPECT_FALSE(fs::exists(dir / "no-init"));
}

TEST(Trainer, ALighterDecoderTrainsOnTheEncoderAndCodebookOfInit) {
  TempDir dir;
  const auto first = trained_micro(dir / "first");
  auto light = micro_run();
  light.train.decoder_only = true;
  light.model.decoder_channels = {4, 4, 8, 16};
  light.model.decoder_res_blocks = {1, 1, 2, 2};
  ASSERT_EQ(light.model.levels(), 4) << "micro_run's levels changed; resize the decoder keys";
  TrainerOptions t;
  t.run_dir = dir / "light";
  t.init_model = dir / "first";
  TokenizerTrainer second(light, t);
  EXPECT_EQ(second.run(synthetic), 6);

  // The saved tokenizer has the lighter decoder, and the encoder and codebook of --init bit
  // for bit: a video gets the same codes, so a language model trained on them still fits.
  auto lighter = load_model(t.run_dir);
  EXPECT_EQ(lighter->config.to_json(), light.model.to_json());
  auto a = named_tensors(*first), b = named_tensors(*lighter);
  std::map<std::string, torch::Tensor> kept;
  for (const auto& [name, v] : b) kept[name] = v;
  int compared = 0;
  for (const auto& [name, v] : a) {
    if (name.rfind("decoder.", 0) == 0) continue;
    ASSERT_TRUE(kept.count(name)) << name;
    EXPECT_TRUE(torch::equal(kept[name], v)) << name;
    ++compared;
  }
  EXPECT_GT(compared, 0);
  EXPECT_LT(lighter->parameter_count(), first->parameter_count());
  std::mt19937_64 rng(3);
  auto x = synthetic(5, 2, rng).permute({0, 4, 1, 2, 3}).to(torch::kFloat).div(127.5).sub(1.0);
  torch::NoGradGuard ng;
  auto old_model = first;
  old_model->eval();
  auto ids = old_model->encode(x);
  EXPECT_TRUE(torch::equal(lighter->encode(x), ids));
  EXPECT_EQ(lighter->decode(ids).sizes(), x.sizes());

  // Another codebook is another encoder's output: refused by name, nothing written; and
  // without decoder_only a different decoder is another architecture.
  auto other = light;
  other.model.codebook_size = 32;
  t.run_dir = dir / "other";
  expect_error([&] { TokenizerTrainer x(other, t); }, {"codebook_size", "decoder keys"});
  EXPECT_FALSE(fs::exists(dir / "other"));
  auto whole = light;
  whole.train.decoder_only = false;
  t.run_dir = dir / "whole";
  expect_error([&] { TokenizerTrainer x(whole, t); }, {"decoder_channels", "--init needs the architecture"});
  EXPECT_FALSE(fs::exists(dir / "whole"));
}

TEST(Trainer, TheLossIsTheWeightedSumOfItsTerms) {
  // Without the GAN: l1_weight * L1 + l2_weight * L2 + codebook_weight * (codebook + commitment).
  TempDir dir;
  torch::manual_seed(0);
  auto cfg = micro_run();
  cfg.train.l1_weight = 0.5;
  cfg.train.l2_weight = 5;
  cfg.train.codebook_weight = 2;
  TrainerOptions o;
  o.run_dir = dir / "run";
  TokenizerTrainer trainer(cfg, o);
  trainer.run(synthetic);
  auto log = read_log(dir / "run/log.jsonl");
  ASSERT_FALSE(log.empty());
  for (const auto& r : log) {
    const double l2 = r["l2"].get<double>();
    EXPECT_NEAR(r["psnr"].get<double>(), 10 * std::log10(4.0 / l2), 1e-6);
    const double expect = 0.5 * r["l1"].get<double>() + 5 * l2 +
                          2 * (r["codebook"].get<double>() + r["commitment"].get<double>());
    EXPECT_NEAR(r["loss"].get<double>(), expect, 1e-5 * std::max(1.0, expect)) << r.dump();
  }
  auto back = TrainConfig::from_json(cfg.train.to_json(), "t.json");
  EXPECT_EQ(back.l2_weight, 5);
  expect_error([&] { TrainConfig::from_json({{"l2_weight", -1}}, "t.json"); }, {"t.json", "l2_weight"});
}

TEST(Trainer, ResumeContinuesExactlyAsIfUninterrupted) {
  TempDir dir;
  auto cfg = micro_run();
  cfg.train.gan_start = 1;
  TrainerOptions straight;
  straight.run_dir = dir / "straight";
  torch::manual_seed(1);
  TokenizerTrainer a(cfg, straight);
  a.run(synthetic);

  // Same run, stopped after 4 steps by a checkpoint, resumed in a new trainer.
  TrainerOptions first;
  first.run_dir = dir / "split";
  torch::manual_seed(1);
  {
    TokenizerTrainer b(cfg, first);
    for (int i = 0; i < 4; ++i) {
      std::mt19937_64 rng(cfg.train.seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(b.global_step()));
      b.step(synthetic(cfg.train.stage_at(b.global_step()).frames, cfg.train.stage_at(b.global_step()).batch_size, rng));
    }
    b.save_checkpoint();
  }
  // A half-written checkpoint from a crash is ignored and cleared away.
  fs::create_directories(dir / "split/checkpoints/step-00000005.partial");
  loong::test::write_bytes(dir / "split/checkpoints/step-00000005.partial/model.safetensors", "garbage");
  EXPECT_EQ(fs::path(newest_checkpoint(first.run_dir)).filename(), "step-00000004");

  // The log of a session killed after step 7's record but before its checkpoint.
  std::string stale;
  for (int s = 0; s < 8; ++s) stale += "{\"step\": " + std::to_string(s) + "}\n";
  loong::test::write_bytes(dir / "split/log.jsonl", stale);

  TrainerOptions resumed = first;
  resumed.resume = true;
  torch::manual_seed(99);  // fresh initialisation must not matter
  TokenizerTrainer c(cfg, resumed);
  EXPECT_EQ(c.global_step(), 4);
  EXPECT_FALSE(fs::exists(dir / "split/checkpoints/step-00000005.partial"));
  EXPECT_EQ(c.run(synthetic), 6);
  EXPECT_TRUE(same_weights(*a.model(), *c.model()));
  EXPECT_TRUE(same_weights(*a.ema_model(), *c.ema_model()));
  std::vector<int64_t> logged;  // each step once: the ones after the checkpoint were cut and logged again
  std::istringstream log(loong::test::read_bytes(dir / "split/log.jsonl"));
  for (std::string line; std::getline(log, line);) logged.push_back(nlohmann::json::parse(line)["step"].get<int64_t>());
  EXPECT_EQ(logged, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));

  // Resuming with a different model is refused; with nothing to resume, too.
  auto other = cfg;
  other.model.codebook_size = 32;
  expect_error([&] { TokenizerTrainer d(other, resumed); }, {"model config differs"});
  TrainerOptions empty;
  empty.run_dir = dir / "empty";
  empty.resume = true;
  expect_error([&] { TokenizerTrainer e(cfg, empty); }, {"nothing to resume"});
}

TEST(Trainer, UsesTheTorchScriptPerceptualNetwork) {
  TempDir dir;
  // A stand-in for an LPIPS export: (x, y) -> per-image mean squared error.
  torch::jit::Module net("Distance");
  net.define(R"(
    def forward(self, x, y):
        return ((x - y) ** 2).mean([1, 2, 3])
  )");
  net.save(dir / "dist.pt");
  auto cfg = micro_run();
  cfg.train.perceptual_model = dir / "dist.pt";
  cfg.train.perceptual_weight = 1.0;
  TrainerOptions o;
  o.run_dir = dir / "run";
  TokenizerTrainer trainer(cfg, o);
  std::mt19937_64 rng(0);
  auto rec = trainer.step(synthetic(5, 2, rng));
  ASSERT_TRUE(rec.contains("perceptual"));
  // The network computes the MSE over [-1, 1] pixels, which the PSNR also reports.
  const double mse = rec["perceptual"].get<double>();
  EXPECT_NEAR(10 * std::log10(4.0 / mse), rec["psnr"].get<double>(), 1e-3);

  loong::test::write_bytes(dir / "junk.pt", "not torchscript");
  cfg.train.perceptual_model = dir / "junk.pt";
  o.run_dir = dir / "run2";
  expect_error([&] { TokenizerTrainer t(cfg, o); }, {"junk.pt", "TorchScript"});
}

TEST(Checkpoint, MismatchedOrDamagedModelsGiveClearErrors) {
  TempDir dir;
  torch::manual_seed(0);
  VideoTokenizer m(micro_run().model);
  save_model(dir / "m", m);
  auto ok = load_model(dir / "m");
  EXPECT_TRUE(same_weights(*ok, *m));

  expect_error([&] { load_model(dir / "nope"); }, {"nope", "no such model folder"});
  fs::create_directories(dir / "empty");
  expect_error([&] { load_model(dir / "empty"); }, {"empty", "not a model folder"});
  // config.json for a different codebook than the weights.
  auto j = loong::read_json_file(dir / "m/config.json");
  j["codebook_size"] = 128;
  loong::write_json_file(dir / "m/config.json", j);
  expect_error([&] { load_model(dir / "m"); }, {"model.safetensors", "quantizer", "shape"});
  // A different architecture: tensors missing.
  j["codebook_size"] = 64;
  j["num_res_blocks"] = 2;
  loong::write_json_file(dir / "m/config.json", j);
  expect_error([&] { load_model(dir / "m"); }, {"model.safetensors", "missing tensor"});
  // Truncated weights.
  j["num_res_blocks"] = 1;
  loong::write_json_file(dir / "m/config.json", j);
  auto bytes = loong::test::read_bytes(dir / "m/model.safetensors");
  loong::test::write_bytes(dir / "m/model.safetensors", bytes.substr(0, bytes.size() / 2));
  expect_error([&] { load_model(dir / "m"); }, {"model.safetensors"});
  // Some other safetensors file.
  loong::safetensors::save(dir / "m/model.safetensors", {{"x", torch::zeros({2})}}, {{"format", "something-else"}});
  expect_error([&] { load_model(dir / "m"); }, {"not a video tokenizer"});
}

TEST(Tokens, LongVideosAreEncodedChunkByChunk) {
  EXPECT_EQ(chunk_lengths(65, 65, 4), (std::vector<int64_t>{65}));
  EXPECT_EQ(chunk_lengths(130, 65, 4), (std::vector<int64_t>{65, 65}));
  EXPECT_EQ(chunk_lengths(70, 65, 4), (std::vector<int64_t>{65, 5}));
  EXPECT_EQ(chunk_lengths(68, 65, 4), (std::vector<int64_t>{65, 1}));  // 2 frames dropped
  EXPECT_EQ(chunk_lengths(1, 65, 4), (std::vector<int64_t>{1}));
  expect_error([&] { chunk_lengths(10, 16, 4); }, {"1 + 4k"});

  TempDir dir;
  torch::manual_seed(0);
  auto cfg = micro_run().model;
  VideoTokenizer m(cfg);
  auto frames = loong::test::natural_clip(72, 16, 16);  // [T, H, W, 3] uint8
  auto enc = encode_video(m, frames, 65, 6.5);
  EXPECT_EQ(enc.chunks, (std::vector<int64_t>{17, 2}));
  EXPECT_EQ(enc.frames, 70);  // 65 + 5; the last 2 frames make no 1 + 4k chunk
  EXPECT_EQ(enc.dropped, 2);
  EXPECT_EQ(enc.tokens.sizes(), (std::vector<int64_t>{19, 2, 2}));
  // Each chunk is encoded on its own: the second chunk's tokens are those of its frames alone.
  auto alone = encode_video(m, frames.narrow(0, 65, 5), 65);
  EXPECT_TRUE(torch::equal(enc.tokens.narrow(0, 17, 2), alone.tokens));
  auto dec = decode_video(m, enc);
  EXPECT_EQ(dec.sizes(), (std::vector<int64_t>{70, 16, 16, 3}));

  save_tokens(dir / "t.safetensors", enc);
  auto back = load_tokens(dir / "t.safetensors");
  EXPECT_TRUE(torch::equal(back.tokens, enc.tokens));
  EXPECT_EQ(back.chunks, enc.chunks);
  EXPECT_DOUBLE_EQ(back.fps, 6.5);
  EXPECT_EQ(back.codebook_size, 64);
  EXPECT_TRUE(torch::equal(decode_video(m, back), dec));

  // Frame by frame, batched: each frame is a one-frame clip of its own. (A
  // spread codebook, so that different frames get different codes.)
  {
    torch::NoGradGuard ng;
    m->quantizer->embedding->weight.normal_();
  }
  auto each = round_trip_frames(m, frames.narrow(0, 0, 5), 2);
  ASSERT_EQ(each.sizes(), (std::vector<int64_t>{5, 16, 16, 3}));
  for (int64_t t = 0; t < 5; ++t) {
    auto one = decode_video(m, encode_video(m, frames.narrow(0, t, 1)))[0];
    EXPECT_LE((each[t].to(torch::kInt) - one.to(torch::kInt)).abs().max().item<int>(), 1) << "frame " << t;
  }
  EXPECT_FALSE(torch::equal(each[0], each[4])) << "different frames, different round trips";
  // Their codes, batched (3, 3, 1: a short last batch), are each frame's codes encoded alone.
  auto codes = encode_frames(m, frames.narrow(0, 0, 7), 3);
  ASSERT_EQ(codes.sizes(), (std::vector<int64_t>{7, 2, 2}));
  EXPECT_EQ(codes.scalar_type(), torch::kLong);
  for (int64_t t = 0; t < 7; ++t)
    EXPECT_TRUE(torch::equal(codes[t], encode_video(m, frames.narrow(0, t, 1)).tokens[0])) << "frame " << t;
  EXPECT_FALSE(torch::equal(codes[0], codes[4]));
  expect_error([&] { encode_frames(m, frames, 0); }, {"at least 1 frame"});
  expect_error([&] { round_trip_frames(m, frames.to(torch::kFloat)); }, {"uint8 frames"});
  expect_error([&] { round_trip_frames(m, frames, 0); }, {"at least 1 frame"});

  loong::safetensors::save(dir / "w.safetensors", {{"x", torch::zeros({2})}});
  expect_error([&] { load_tokens(dir / "w.safetensors"); }, {"w.safetensors", "not a token file"});
  loong::safetensors::save(dir / "r.safetensors",
                           {{"tokens", torch::full({1, 2, 2}, 70, torch::kInt)}, {"chunks", torch::ones({1}, torch::kInt)}},
                           {{"format", "loong-video-tokens"}, {"codebook_size", "64"}});
  expect_error([&] { load_tokens(dir / "r.safetensors"); }, {"out of range"});
  loong::safetensors::save(dir / "c.safetensors",
                           {{"tokens", torch::zeros({3, 2, 2}, torch::kInt)}, {"chunks", torch::ones({1}, torch::kInt)}},
                           {{"format", "loong-video-tokens"}});
  expect_error([&] { load_tokens(dir / "c.safetensors"); }, {"'chunks' add up to 1", "has 3"});
  VideoTokenizer bigger([&] {
    auto c = cfg;
    c.codebook_size = 128;
    return c;
  }());
  expect_error([&] { decode_video(bigger, back); }, {"codebook of 64 codes", "128"});
}

TEST(Metrics, PsnrAndSsim) {
  auto a = loong::test::natural_clip(3, 32, 32);
  EXPECT_EQ(loong::eval::psnr_per_frame(a, a), (std::vector<double>{100, 100, 100}));
  auto s = loong::eval::ssim_per_frame(a, a);
  for (double v : s) EXPECT_NEAR(v, 1.0, 1e-9);
  // A uniform error of 8 levels: MSE 64 -> 10 log10(255^2 / 64) = 30.07 dB.
  auto b = (a.to(torch::kInt) + torch::where(a < 128, 8, -8)).to(torch::kUInt8);
  for (double v : loong::eval::psnr_per_frame(a, b)) EXPECT_NEAR(v, 30.07, 0.01);
  // More noise, lower SSIM; SSIM stays in [-1, 1].
  torch::manual_seed(0);
  auto noisy = [&](double sd) {
    return (a.to(torch::kFloat) + torch::randn(a.sizes()) * sd).round().clamp(0, 255).to(torch::kUInt8);
  };
  const double s1 = loong::eval::mean(loong::eval::ssim_per_frame(a, noisy(5)));
  const double s2 = loong::eval::mean(loong::eval::ssim_per_frame(a, noisy(40)));
  EXPECT_LT(s1, 1.0);
  EXPECT_LT(s2, s1);
  EXPECT_GT(s2, -1.0);
  expect_error([&] { loong::eval::psnr_per_frame(a, a.narrow(0, 0, 2)); }, {"same shape"});
}
