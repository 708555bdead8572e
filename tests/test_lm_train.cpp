// The language-model trainer: schedule arithmetic, config validation, exact
// resume, non-finite steps, data/vocabulary checks, what a run folder holds,
// and that a run can drive one sample's loss near zero.
#include <cmath>
#include <filesystem>

#include <torch/torch.h>

#include "loong/core/json_util.h"
#include "loong/lm/shards.h"
#include "loong/lm/train_config.h"
#include "loong/lm/checkpoint.h"
#include "loong/lm/trainer.h"
#include "loong/store/checkpoints.h"
#include "loong/io/plot.h"
#include "lm_test_data.h"
#include "test_util.h"

using namespace loong::lm;
using loong::test::expect_error;
using loong::test::TempDir;
using loong::test::write_shards;
namespace fs = std::filesystem;

namespace {

nlohmann::json micro_config(const std::string& data) {
  auto j = nlohmann::json::parse(R"({
    "model": {"dim": 32, "n_layers": 2, "n_heads": 4, "ffn_dim": 64, "max_seq_len": 64},
    "stages": [
      {"frames": 1, "steps": 3, "batch_size": 4, "lr": 3e-3, "warmup_steps": 2},
      {"frames": 17, "steps": 3, "batch_size": 2, "grad_accum": 2, "image_fraction": 0.5, "lr": 2e-3,
       "warmup_steps": 1, "lambda": 1.0}],
    "caption_dropout": 0.3, "checkpoint_every": 0, "plot_every": 0})");
  j["data"] = data;
  return j;
}

LmTrainConfig config_of(const nlohmann::json& j) { return LmTrainConfig::from_json(j, "test config"); }

LmTrainerOptions options(const std::string& run, bool resume = false) {
  LmTrainerOptions o;
  o.run_dir = run;
  o.resume = resume;
  return o;
}

void expect_same_weights(const Llama& a, const Llama& b) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i)
    EXPECT_TRUE(torch::equal(pa[i].value(), pb[i].value())) << pa[i].key() << " differs";
}

}  // namespace

TEST(LmTrain, ScheduleStagesAndConfigErrors) {
  auto c = LmTrainConfig::preset("tiny");
  c.stages = {{"a", 1, 1, 10, 4, 1, 1e-3, 4, 0.1, 0}, {"b", 17, 0.2, 20, 2, 1, 5e-4, 0, 0.0, 1}};
  EXPECT_EQ(c.total_steps(), 30);
  EXPECT_EQ(c.stage_index(9), 0);
  EXPECT_EQ(c.stage_index(10), 1);
  EXPECT_EQ(c.stage_start(1), 10);
  EXPECT_DOUBLE_EQ(c.lr_at(0), 1e-3 / 4);  // warm-up
  EXPECT_DOUBLE_EQ(c.lr_at(3), 1e-3);
  EXPECT_NEAR(c.lr_at(9), 1e-3 * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 5 / 6.0))), 1e-12);
  EXPECT_DOUBLE_EQ(c.lr_at(10), 5e-4);     // a new stage starts at its own peak (no warm-up here)
  EXPECT_NEAR(c.lr_at(29), 5e-4 * 0.5 * (1 + std::cos(M_PI * 19 / 20.0)), 1e-12);  // cosine to the stage end
  EXPECT_EQ(c.latent_frames(65), 17);

  // The JSON round trip keeps every setting.
  c.stages[1].given_frames = 5;
  c.stages[1].splice_fraction = 0.25;
  auto back = LmTrainConfig::from_json(c.to_json(), "x");
  EXPECT_EQ(back.stages[1].given_frames, 5);
  EXPECT_EQ(back.to_json(), c.to_json());

  const std::string data = "shards";
  auto bad = [&](nlohmann::json patch, std::initializer_list<std::string> pieces) {
    auto j = micro_config(data);
    j.merge_patch(patch);
    expect_error([&] { config_of(j); }, pieces);
  };
  bad({{"stages", {{{"frames", 16}}}}}, {"stages[0]", "'frames'", "1 + 4k", "16"});
  bad({{"stages", {{{"frames", 17}, {"image_fraction", 1.0}}}}}, {"stages[0]", "image_fraction"});
  bad({{"stages", {{{"frames", 1}, {"stepz", 3}}}}}, {"stages[0]", "stepz"});
  bad({{"stages", nlohmann::json::array()}}, {"'stages'", "non-empty"});
  bad({{"lr", 1e-3}}, {"test config", "'lr'"});  // lr belongs to a stage
  bad({{"preset", "huge"}}, {"'preset'", "huge", "tiny, paper"});
  bad({{"model", {{"dim", 30}}}}, {"model", "'dim'", "n_heads"});
  bad({{"weighted_frames", 16}}, {"weighted_frames", "16"});
  bad({{"caption_dropout", 2}}, {"caption_dropout"});
  bad({{"stages", {{{"frames", 17}, {"given_frames", 4}}}}}, {"stages[0]", "'given_frames'", "1 + 4k", "got 4"});
  bad({{"stages", {{{"frames", 17}, {"given_frames", 17}}}}}, {"stages[0]", "'given_frames'", "fewer than"});
  bad({{"stages", {{{"frames", 17}, {"splice_fraction", 0.5}}}}}, {"stages[0]", "'splice_fraction'", "given_frames"});
  expect_error([] { LmTrainConfig::load("/nonexistent/train.json"); }, {"/nonexistent/train.json", "no such"});
}

TEST(LmTrain, ResumeIsExact) {
  TempDir dir;
  write_shards(dir / "shards", 8, 8);
  const auto cfg = config_of(micro_config(dir / "shards"));
  // 6 steps in one go (across the stage boundary at 3).
  LmTrainer one(cfg, options(dir / "one"));
  for (int i = 0; i < 6; ++i) one.step();
  // 2 steps, a checkpoint, a new process's trainer, 4 more.
  {
    LmTrainer first(cfg, options(dir / "two"));
    for (int i = 0; i < 2; ++i) first.step();
    first.save_checkpoint();
    first.step();  // trained after the checkpoint: must not leak into the resumed run
  }
  torch::manual_seed(1234);  // the process's generator moves on; the checkpoint restores it
  LmTrainer second(cfg, options(dir / "two", true));
  EXPECT_EQ(second.global_step(), 2);
  for (int i = 0; i < 4; ++i) second.step();
  expect_same_weights(one.model(), second.model());

  // A new run refuses a folder that already holds checkpoints; resuming needs one.
  expect_error([&] { LmTrainer x(cfg, options(dir / "two")); }, {"already holds checkpoints", "--resume"});
  expect_error([&] { LmTrainer x(cfg, options(dir / "none", true)); }, {"nothing to resume"});
}

// A story stage: the clips' first 5 frames (2 latent frames) are given, often
// another sample's, and carry no loss; splicing draws from the step's seed, so
// a resumed run is still exact.
TEST(LmTrain, StoryStageLearnsOnlyAfterTheGivenFrames) {
  TempDir dir;
  write_shards(dir / "shards", 8, 8);
  auto j = micro_config(dir / "shards");
  j["stages"][1]["image_fraction"] = 0;
  j["stages"][1]["given_frames"] = 5;
  j["stages"][1]["splice_fraction"] = 0.5;
  const auto cfg = config_of(j);
  LmTrainer one(cfg, options(dir / "one"));
  for (int i = 0; i < 3; ++i) one.step();
  for (int i = 0; i < 3; ++i) {
    const auto rec = one.step();
    EXPECT_TRUE(std::isnan(rec["loss_frame_1"].get<double>())) << "frame 1 is given";
    EXPECT_TRUE(std::isfinite(rec["loss_frames_2_17"].get<double>()));
    EXPECT_EQ(rec["video_tokens"], 2 * 2 * (5 - 2) * 4) << "2 micro-batches of 2 clips, 3 learned latent frames of 2x2";
  }
  {
    LmTrainer first(cfg, options(dir / "two"));
    for (int i = 0; i < 4; ++i) first.step();
    first.save_checkpoint();
  }
  LmTrainer second(cfg, options(dir / "two", true));
  for (int i = 0; i < 2; ++i) second.step();
  expect_same_weights(one.model(), second.model());
  // Without splices (the same draws) the same steps learn from the clips' own starts: other weights.
  j["stages"][1]["splice_fraction"] = 1e-12;
  LmTrainer unspliced(config_of(j), options(dir / "unspliced"));
  for (int i = 0; i < 6; ++i) unspliced.step();
  EXPECT_FALSE(torch::equal(unspliced.model()->output->weight, one.model()->output->weight));
}

TEST(LmTrain, InitStartsFromAnotherModelsWeights) {
  TempDir dir;
  write_shards(dir / "shards", 8, 8);
  auto cfg = config_of(micro_config(dir / "shards"));
  LmTrainer first(cfg, options(dir / "first"));
  for (int i = 0; i < 2; ++i) first.step();
  first.save_checkpoint();
  // A packed bundle's folder holds loong.json and the language model under lm/ (f16 here, as
  // the default model's).
  const fs::path bundle = dir / "bundle";
  fs::create_directories(bundle);
  loong::write_json_file((bundle / "loong.json").string(), {{"format", "loong-model"}});
  save_lm((bundle / "lm").string(), first.model(), {}, torch::kHalf);

  auto tuned = cfg;
  tuned.stages.erase(tuned.stages.begin());  // fine-tune on the clip stage alone
  auto o = options(dir / "tuned");
  o.init_model = dir / "first";  // a run folder: its newest checkpoint
  torch::manual_seed(7);         // a random initialisation would differ
  {
    LmTrainer second(tuned, o);
    expect_same_weights(second.model(), first.model());
    EXPECT_EQ(second.global_step(), 0);
    second.step();
    EXPECT_FALSE(torch::equal(second.model()->parameters()[0], first.model()->parameters()[0]))
        << "and it trains from there";
  }
  o.init_model = dir / "bundle";
  o.run_dir = dir / "from-bundle";
  LmTrainer third(tuned, o);
  auto pa = third.model()->named_parameters(), pb = first.model()->named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pa[i].value().scalar_type(), torch::kFloat) << pa[i].key() << ": widened back to f32";
    EXPECT_TRUE(torch::equal(pa[i].value(), pb[i].value().to(torch::kHalf).to(torch::kFloat))) << pa[i].key();
  }

  // Another architecture is named; --init with --resume is refused; nothing is written.
  auto other = config_of(micro_config(dir / "shards"));
  other.model.ffn_dim = 96;
  o.run_dir = dir / "other";
  expect_error([&] { LmTrainer x(other, o); }, {"bundle", "ffn_dim = 64", "96", "--init"});
  EXPECT_FALSE(fs::exists(dir / "other")) << "a refused --init writes nothing";
  o.run_dir = dir / "both";
  o.resume = true;
  expect_error([&] { LmTrainer x(tuned, o); }, {"--init", "--resume"});
  EXPECT_FALSE(fs::exists(dir / "both"));
  o.resume = false;
  o.init_model = dir / "missing";
  o.run_dir = dir / "missing-run";
  expect_error([&] { LmTrainer x(tuned, o); }, {"missing"});
  EXPECT_FALSE(fs::exists(dir / "missing-run"));
  // Another kind of model (its config has keys a language model's lacks) is named as such.
  loong::store::save_model_folder(dir / "tok", *first.model(), "loong-video-tokenizer", {{"base_channels", 8}});
  o.init_model = dir / "tok";
  expect_error([&] { LmTrainer x(tuned, o); }, {"'loong-video-tokenizer' file", "not a language model"});
  EXPECT_FALSE(fs::exists(dir / "missing-run"));
}

TEST(LmTrain, NonFiniteStepsAreSkippedThenStopTheRun) {
  TempDir dir;
  write_shards(dir / "shards", 8, 8);
  auto j = micro_config(dir / "shards");
  j["max_bad_steps"] = 2;
  LmTrainer t(config_of(j), options(dir / "run"));
  t.step();
  t.save_checkpoint();
  auto w = t.model()->output->weight;
  const auto before = t.model()->layers->ptr(0)->named_parameters()[0].value().clone();
  const float saved = w[0][0].item<float>();
  {
    torch::NoGradGuard ng;
    w[0][0] = std::numeric_limits<float>::quiet_NaN();
  }
  auto rec = t.step();
  EXPECT_TRUE(rec.value("skipped", false));
  EXPECT_EQ(t.skipped_steps(), 1);
  EXPECT_EQ(t.global_step(), 2);  // the data moves on
  EXPECT_TRUE(torch::equal(before, t.model()->layers->ptr(0)->named_parameters()[0].value())) << "no update applied";
  {
    torch::NoGradGuard ng;
    w[0][0] = saved;
  }
  rec = t.step();  // healthy again: resets the count of bad steps in a row
  EXPECT_FALSE(rec.contains("skipped"));
  {
    torch::NoGradGuard ng;
    w[0][0] = std::numeric_limits<float>::infinity();
  }
  t.step();
  expect_error([&] { t.step(); }, {"2 steps in a row", "non-finite", "step-00000001", "--resume"});
  // The last good checkpoint is untouched and loads.
  auto m = load_lm(dir / "run");
  EXPECT_TRUE(torch::isfinite(m->output->weight).all().item<bool>());
}

TEST(LmTrain, ChecksDataAgainstModelAndTokenizers) {
  TempDir dir;
  write_shards(dir / "shards", 4, 4);
  auto make = [&](nlohmann::json patch) {
    auto j = micro_config(dir / "shards");
    j.merge_patch(patch);
    return config_of(j);
  };
  // Vocabulary sizes: taken from the shards unless named, then they must agree.
  {
    LmTrainer t(make(nlohmann::json::object()), options(dir / "ok"));
    EXPECT_EQ(t.config().model.text_vocab, 12);
    EXPECT_EQ(t.config().model.video_vocab, 16);
    EXPECT_EQ(t.model()->config.vocab_size(), 12 + 16 + 10);
  }
  // 3D rotary positions take their grid from the shards (2 x 2 latent frames here) and record it.
  {
    LmTrainer t(make({{"model", {{"rope", "3d"}}}}), options(dir / "rope"));
    EXPECT_EQ(t.model()->config.rope_rows, 2);
    EXPECT_EQ(t.model()->config.rope_cols, 2);
    EXPECT_EQ(t.config().model.to_json()["rope_grid"], nlohmann::json({2, 2}));
  }
  expect_error([&] { LmTrainer t(make({{"model", {{"rope", "3d"}, {"rope_grid", {4, 4}}}}}), options(dir / "a")); },
               {"model.rope_grid", "[4, 4]", "2 x 2"});
  expect_error([&] { LmTrainer t(make({{"model", {{"text_vocab", 40}}}}), options(dir / "a")); },
               {"text_vocab 40", "12 text pieces"});
  expect_error([&] { LmTrainer t(make({{"model", {{"video_vocab", 8}}}}), options(dir / "a")); },
               {"video_vocab 8", "16 video codes"});
  loong::write_json_file(dir / "text/text.json", {{"format", "loong-text-tokenizer"}, {"vocab_size", 30}});
  expect_error([&] { LmTrainer t(make({{"text_tokenizer", dir / "text"}}), options(dir / "a")); },
               {"text.json", "30 pieces", "12"});
  // Clips longer than the shards hold; sequences longer than the model takes.
  expect_error([&] { LmTrainer t(make({{"stages", {{{"frames", 65}, {"steps", 1}}}}}), options(dir / "a")); },
               {"stages[0]", "65-frame clips", "--chunk 65"});
  expect_error([&] { LmTrainer t(make({{"model", {{"max_seq_len", 16}}}}), options(dir / "a")); },
               {"stages[1]", "max_seq_len 16"});
  expect_error([&] { LmTrainer t(make({{"data", dir / "nope"}}), options(dir / "a")); }, {"nope"});
  // A damaged shard.
  std::string bytes = loong::test::read_bytes(dir / "shards/part-00000-of-00001.loongshard");
  bytes[40] ^= 4;
  loong::test::write_bytes(dir / "bad/part-00000-of-00001.loongshard", "");
  fs::create_directories(dir / "bad");
  loong::test::write_bytes(dir / "bad/part-00000-of-00001.loongshard", bytes);
  expect_error([&] { LmTrainer t(make({{"data", dir / "bad"}}), options(dir / "a")); }, {"part-00000-of-00001", "checksum"});
}

TEST(LmTrain, RunWritesLogPlotAndRotatingCheckpoints) {
  TempDir dir;
  write_shards(dir / "shards", 8, 8);
  auto j = micro_config(dir / "shards");
  j["checkpoint_every"] = 2;
  j["keep_checkpoints"] = 2;
  j["plot_every"] = 3;
  std::vector<std::string> lines;
  auto o = options(dir / "run");
  o.print = [&](const std::string& s) { lines.push_back(s); };
  LmTrainer t(config_of(j), o);
  EXPECT_EQ(t.run(), 6);
  auto cks = loong::store::list_checkpoints(dir / "run");
  ASSERT_EQ(cks.size(), 2u);
  EXPECT_EQ(cks[0].first, 4);
  EXPECT_EQ(cks[1].first, 6);
  expect_same_weights(load_lm(dir / "run"), t.model());
  // One JSON line per step with the per-range losses; clips only in stage 2.
  std::istringstream log(loong::test::read_bytes(dir / "run/log.jsonl"));
  std::string line;
  int n = 0;
  while (std::getline(log, line)) {
    auto r = nlohmann::json::parse(line);
    EXPECT_EQ(r["step"].get<int>(), n);
    for (const char* k : {"loss", "ce", "loss_frame_1", "grad_norm", "lr", "tokens_per_s", "ms"})
      EXPECT_TRUE(r.contains(k)) << k;
    if (n < 3) {
      EXPECT_TRUE(r["loss_frames_2_17"].is_null()) << "images have no later frames";
    }
    ++n;
  }
  EXPECT_EQ(n, 6);
  bool stage_line = false, step_line = false;
  for (const auto& l : lines) {
    stage_line |= l.rfind("stage 2/2", 0) == 0;
    step_line |= l.rfind("step 6/6", 0) == 0 && l.find("f2-17") != std::string::npos && l.find("ETA") != std::string::npos;
  }
  EXPECT_TRUE(stage_line);
  EXPECT_TRUE(step_line);
#ifdef LOONG_WITH_PNG
  EXPECT_TRUE(fs::exists(dir / "run/loss_curves.png"));
#endif
  EXPECT_TRUE(fs::exists(dir / "run/run.json"));
  auto rerun = LmTrainer::run_config(dir / "run");
  EXPECT_EQ(rerun.model.text_vocab, 12);
}

TEST(LmTrain, OverfitsOneSample) {
  TempDir dir;
  write_shards(dir / "shards", 0, 1);
  auto j = micro_config(dir / "shards");
  j["stages"] = {{{"frames", 17}, {"image_fraction", 0}, {"steps", 150}, {"batch_size", 1}, {"lr", 1e-2},
                  {"warmup_steps", 5}, {"min_lr_ratio", 1.0}}};
  j["caption_dropout"] = 0;
  j["weight_decay"] = 0;
  LmTrainer t(config_of(j), options(dir / "run"));
  double first = 0, last = 0;
  for (int i = 0; i < 150; ++i) {
    auto r = t.step();
    (i == 0 ? first : last) = r["ce"].get<double>();
  }
  EXPECT_GT(first, 2.0);
  EXPECT_LT(last, 0.05);
}

TEST(LmTrain, LinePlotDrawsEachSeries) {
  loong::plot::Series a{"frame 1", {255, 0, 0}, {0, 1, 2, 3}, {4, 3, NAN, 1}};
  loong::plot::Series b{"frames 2-17", {0, 0, 255}, {0, 1, 2, 3}, {2, 2, 2, 2}};
  auto img = loong::plot::line_plot({a, b}, "step", "loss", 320, 200);
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{200, 320, 3}));
  auto red = img.select(2, 0).eq(255) & img.select(2, 1).eq(0) & img.select(2, 2).eq(0);
  auto blue = img.select(2, 0).eq(0) & img.select(2, 1).eq(0) & img.select(2, 2).eq(255);
  EXPECT_GT(red.sum().item<int64_t>(), 100);
  EXPECT_GT(blue.sum().item<int64_t>(), 100);
  auto s = loong::plot::ema_smooth({1, NAN, 3}, 0.5);
  EXPECT_DOUBLE_EQ(s[0], 1);
  EXPECT_TRUE(std::isnan(s[1]));
  EXPECT_NEAR(s[2], (0.25 * 1 + 0.5 * 3) / 0.75, 1e-12);
}
