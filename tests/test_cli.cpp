// The `loong` binary: help lists commands and defaults; bad flags and bad
// inputs give one clear line on stderr and a non-zero exit, never a trace.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>


#include "loong/core/json_util.h"
#include "loong/data/manifest.h"
#include "loong/io/safetensors.h"
#include "loong/io/video.h"
#include "loong/lm/shards.h"
#include "cli_util.h"
#include "detector_util.h"
#include "lm_test_data.h"
#include "loong/store/checkpoints.h"
#include "test_util.h"

using loong::test::TempDir;

using loong::test::expect_one_line_error;
using loong::test::lines;
using loong::test::run;
using loong::test::write_stats_detector;

TEST(Cli, HelpListsCommandsAndDefaults) {
  auto top = run("--help");
  EXPECT_EQ(top.code, 0);
  for (const char* c : {"video", "data", "checkpoint", "tokenizer", "--threads", "--version"})
    EXPECT_NE(top.out.find(c), std::string::npos) << c;
  auto convert = run("video convert --help");
  EXPECT_EQ(convert.code, 0);
  for (const char* c : {"--fps", "6.5", "--size", "128", "--start", "--end", "--crf", "18"})
    EXPECT_NE(convert.out.find(c), std::string::npos) << c;
  auto mf = run("data moving-fashion --help");
  for (const char* c : {"--videos", "--seconds", "--seed", "--images", "--split", "--scene-changes"})
    EXPECT_NE(mf.out.find(c), std::string::npos) << c;
  EXPECT_NE(run("--version").out.find("LibTorch"), std::string::npos);
}

TEST(Cli, BadFlagsGiveOneLineAndExitTwo) {
  expect_one_line_error(run("video convert a.mp4 b.mp4 --bogus 1"), 2, "--bogus");
  expect_one_line_error(run("video convert a.mp4"), 2, "output");
  expect_one_line_error(run("video convert a.mp4 b.mp4 --fps abc"), 2, "--fps");
  expect_one_line_error(run("video convert a.mp4 b.mp4 --fps -1"), 2, "--fps");
  expect_one_line_error(run("data moving-fashion --out x --split nope"), 2, "--split");
  expect_one_line_error(run("data moving-fashion --videos 2"), 2, "--out");
  expect_one_line_error(run("frobnicate"), 2, "frobnicate");
  expect_one_line_error(run("video bogus"), 2, "unknown command 'bogus'");
  expect_one_line_error(run(""), 2, "subcommand");
  // Values the command itself checks exit 2 as well, whatever the check's place.
  expect_one_line_error(run("video convert a.mp4 b.mp4 --fps nan"), 2, "--fps");
  expect_one_line_error(run("video convert a.mp4 b.mp4 --fps inf"), 2, "--fps");
  expect_one_line_error(run("--threads 100000 video info a.mp4"), 2, "--threads");
  // Global options after the command too.
  expect_one_line_error(run("video info a.mp4 --threads 100000"), 2, "--threads");
  expect_one_line_error(run("video info --threads 1 a.mp4"), 1, "a.mp4: no such file");
  // NaN passes CLI11's own number checks; no option takes it.
  expect_one_line_error(run("train --config tiny --out x --max-minutes nan"), 2, "--max-minutes: expected a finite");
  expect_one_line_error(run("video convert a.mp4 b.mp4 --start nan"), 2, "--start");
}

TEST(Cli, BadInputsNameTheFileAndExitOne) {
  TempDir dir;
  loong::test::write_bytes(dir / "junk.mp4", "junk");
  expect_one_line_error(run("video info " + (dir / "junk.mp4")), 1, "junk.mp4");
  expect_one_line_error(run("video convert " + (dir / "nope.mp4") + " " + (dir / "o.mp4")), 1, "nope.mp4: no such file");
  EXPECT_FALSE(std::filesystem::exists(dir / "o.mp4"));
  loong::test::write_bytes(dir / "w.safetensors", std::string(8, '\xff'));
  expect_one_line_error(run("checkpoint info " + (dir / "w.safetensors")), 1, "w.safetensors");
  expect_one_line_error(run("video convert " + (dir / "junk.mp4") + " " + (dir / "o.mp4") + " --start 3 --end 1"), 2, "--end");
}

TEST(Cli, VideoCommandsAndDataCheck) {
  TempDir dir;
  auto gen = run("data moving-fashion --quiet --out " + (dir / "mf") + " --videos 2 --seconds 2 --size 64 --seed 1");
  ASSERT_EQ(gen.code, 0) << gen.err;
  const std::string v = dir / "mf/videos/000000.mp4";
  auto info = run("video info " + v);
  ASSERT_EQ(info.code, 0) << info.err;
  auto j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j["streams"][0]["frames"], 13);
  EXPECT_EQ(j["streams"][0]["fps"], 6.5);
  auto conv = run("video convert " + v + " " + (dir / "small.gif") + " --fps 3 --size 32");
  ASSERT_EQ(conv.code, 0) << conv.err;
  EXPECT_NE(conv.out.find("32x32"), std::string::npos);
  ASSERT_EQ(run("video sheet " + v + " " + (dir / "s.png") + " --tiles 4").code, 0);
  EXPECT_TRUE(std::filesystem::exists(dir / "s.png"));

  auto ok = run("data check " + (dir / "mf/manifest.jsonl"));
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("2 ok, 0 bad"), std::string::npos) << ok.out;
  loong::test::write_bytes(dir / "mixed.jsonl",
      "{\"video\": \"mf/videos/000000.mp4\", \"caption\": \"fine\"}\n"
      "{\"video\": \"mf/videos/missing.mp4\", \"caption\": \"gone\"}\n"
      "{\"video\": \"x.mp4\"}\n");
  auto bad = run("data check " + (dir / "mixed.jsonl"));
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("mixed.jsonl:2"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("missing.mp4: no such file"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("mixed.jsonl:3: missing key 'caption'"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("1 ok, 1 bad, 1 malformed"), std::string::npos) << bad.out;
}

TEST(Cli, InterruptedRunLeavesOnlyCompleteFiles) {
  TempDir dir;
  const std::string out = dir / "mf";
  pid_t pid = fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl(LOONG_CLI_PATH, "loong", "data", "moving-fashion", "--quiet", "--out", out.c_str(), "--videos", "400",
          "--seconds", "20", "--size", "96", nullptr);
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  // Wait until a few videos are done, then interrupt mid-run.
  for (int i = 0; i < 600; ++i) {
    std::error_code ec;
    if (std::filesystem::exists(out + "/videos/000003.json", ec)) break;
    usleep(50 * 1000);
  }
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT) << "the run was still going when interrupted";
  int videos = 0;
  for (const auto& e : std::filesystem::directory_iterator(out + "/videos")) {
    const std::string name = e.path().filename().string();
    EXPECT_NE(name[0], '.') << "temporary file left behind: " << name;
    if (e.path().extension() == ".mp4") {
      ++videos;
      EXPECT_EQ(loong::video::probe(e.path().string()).streams.at(0).frames, 130) << name;
    }
  }
  EXPECT_GE(videos, 4);
  EXPECT_FALSE(std::filesystem::exists(out + "/manifest.jsonl")) << "the manifest is written only at the end";
}

TEST(Cli, CheckpointInfoListsTensorsAndConfig) {
  TempDir dir;
  std::filesystem::create_directories(dir / "ck");
  loong::safetensors::save(dir / "ck/model.safetensors",
                           {{"layers.0.attention.wq.weight", torch::zeros({4, 8}, torch::kBFloat16)},
                            {"tok_embeddings.weight", torch::zeros({10, 4})}},
                           {{"format", "pt"}});
  loong::test::write_bytes(dir / "ck/config.json", "{\"dim\": 4, \"n_layers\": 1}");
  auto r = run("checkpoint info " + (dir / "ck") + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["config"]["n_layers"], 1);
  ASSERT_EQ(j["files"].size(), 1u);
  const auto& f = j["files"][0];
  EXPECT_EQ(f["parameters"], 72);
  EXPECT_EQ(f["metadata"]["format"], "pt");
  EXPECT_EQ(f["tensors"][0]["name"], "layers.0.attention.wq.weight");
  EXPECT_EQ(f["tensors"][0]["dtype"], "BF16");
  EXPECT_EQ(f["tensors"][0]["shape"], nlohmann::json({4, 8}));
  auto text = run("checkpoint info " + (dir / "ck/model.safetensors"));
  EXPECT_EQ(text.code, 0);
  EXPECT_NE(text.out.find("2 tensors, 72 parameters"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("tok_embeddings.weight"), std::string::npos);
  std::filesystem::create_directories(dir / "empty");
  expect_one_line_error(run("checkpoint info " + (dir / "empty")), 1, "no .safetensors files");
}

TEST(Cli, TokenizerTrainEncodeDecodeReconstructEval) {
  TempDir dir;
  auto gen = run("data moving-fashion --quiet --out " + (dir / "mf") + " --videos 3 --seconds 2 --size 16 --images 4");
  ASSERT_EQ(gen.code, 0) << gen.err;
  // A micro model on 16x16 frames, two short stages.
  loong::test::write_bytes(dir / "cfg.json", R"({"preset": "tiny",
    "model": {"image_size": 16, "base_channels": 8, "codebook_size": 64, "codebook_dim": 8},
    "train": {"stages": [{"frames": 1, "steps": 2, "batch_size": 2}, {"frames": 5, "steps": 2, "batch_size": 1}],
              "sample_every": 2, "checkpoint_every": 2, "max_minutes": 0}})");
  const std::string run_dir = dir / "run";
  auto train = run("tokenizer train --config " + (dir / "cfg.json") + " --data " + (dir / "mf/manifest.jsonl") +
                   " --out " + run_dir);
  ASSERT_EQ(train.code, 0) << train.err;
  EXPECT_NE(train.out.find("step 4/4"), std::string::npos) << train.out;
  EXPECT_TRUE(std::filesystem::exists(run_dir + "/checkpoints/step-00000004/model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(run_dir + "/samples/step-00000002.png"));
  EXPECT_EQ(lines(loong::test::read_bytes(run_dir + "/log.jsonl")), 4);
  // Resuming a finished run does nothing more but succeeds.
  auto again = run("tokenizer train --resume --data " + (dir / "mf/manifest.jsonl") + " --out " + run_dir);
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(lines(loong::test::read_bytes(run_dir + "/log.jsonl")), 4);
  // Fine-tuning: a new run from the trained weights.
  auto tuned = run("tokenizer train --config " + (dir / "cfg.json") + " --data " + (dir / "mf/manifest.jsonl") +
                   " --out " + (dir / "tuned") + " --init " + run_dir);
  EXPECT_EQ(tuned.code, 0) << tuned.err;
  EXPECT_NE(tuned.out.find("initialised from " + run_dir), std::string::npos) << tuned.out;
  expect_one_line_error(run("tokenizer train --resume --init " + run_dir + " --data " + (dir / "mf/manifest.jsonl") +
                            " --out " + (dir / "tuned")),
                        2, "--init");

  const std::string v = dir / "mf/videos/000000.mp4";  // 13 frames -> chunks of 5: 5 + 5 + 1, 2 dropped
  auto enc = run("tokenizer encode --model " + run_dir + " " + v + " -o " + (dir / "t.safetensors") + " --chunk 5");
  ASSERT_EQ(enc.code, 0) << enc.err;
  auto tokens = loong::safetensors::load(dir / "t.safetensors");
  EXPECT_EQ(tokens.at("tokens").sizes(), (std::vector<int64_t>{5, 2, 2}));
  EXPECT_EQ(tokens.at("tokens").scalar_type(), torch::kInt);
  auto dec = run("tokenizer decode --model " + run_dir + " " + (dir / "t.safetensors") + " -o " + (dir / "d.mp4"));
  ASSERT_EQ(dec.code, 0) << dec.err;
  EXPECT_EQ(loong::video::probe(dir / "d.mp4").streams[0].frames, 11);

  auto rec = run("tokenizer reconstruct --model " + run_dir + " " + v + " -o " + (dir / "r.mp4") + " --side-by-side");
  ASSERT_EQ(rec.code, 0) << rec.err;
  auto rj = nlohmann::json::parse(rec.out);
  EXPECT_EQ(rj["frames"], 13);
  EXPECT_GT(rj["psnr"].get<double>(), 0);
  EXPECT_EQ(loong::video::probe(dir / "r.mp4").streams[0].width, 32);  // side by side

  write_stats_detector(dir / "d.pt");
  auto ev = run("tokenizer eval --model " + run_dir + " --data " + (dir / "mf/manifest.jsonl") + " --frames 5 --json " +
                (dir / "e.json") + " --detector " + (dir / "d.pt"));
  ASSERT_EQ(ev.code, 0) << ev.err;
  auto ej = nlohmann::json::parse(ev.out);
  EXPECT_GE(ej["fvd"].get<double>(), 0);  // originals against reconstructions
  EXPECT_EQ(ej["clips"], 3);
  EXPECT_EQ(ej["psnr_per_frame"].size(), 5u);
  EXPECT_EQ(ej["tokens"], 3 * 2 * 4);
  EXPECT_GT(ej["codebook_usage"].get<double>(), 0);
  EXPECT_LE(ej["codebook_usage"].get<double>(), 24.0 / 64);
  EXPECT_TRUE(std::filesystem::exists(dir / "e.json"));
}

TEST(Cli, TokenizerBadInputs) {
  TempDir dir;
  loong::test::write_bytes(dir / "m.jsonl", "{\"image\": \"a.png\", \"caption\": \"x\"}\n");
  loong::test::write_bytes(dir / "bad.json", R"({"train": {"learning_rate": 0.1}})");
  expect_one_line_error(run("tokenizer train --config " + (dir / "bad.json") + " --data " + (dir / "m.jsonl") +
                            " --out " + (dir / "r")),
                        1, "unknown key 'learning_rate'");
  expect_one_line_error(run("tokenizer train --data " + (dir / "m.jsonl") + " --out " + (dir / "r")), 2, "--config");
  expect_one_line_error(run("tokenizer train --resume --data " + (dir / "m.jsonl") + " --out " + (dir / "r")), 1,
                        "nothing to resume");
  expect_one_line_error(run("tokenizer encode --model " + (dir / "none") + " x.mp4 -o t.safetensors"), 1,
                        "no such model folder");
  expect_one_line_error(run("tokenizer encode --model " + (dir / "none") + " x.mp4"), 2, "--output");
  expect_one_line_error(run("tokenizer config huge"), 1, "huge");
  auto cfg = run("tokenizer config paper");
  ASSERT_EQ(cfg.code, 0);
  EXPECT_EQ(nlohmann::json::parse(cfg.out)["model"]["codebook_size"], 8192);
}

#ifdef LOONG_WITH_SENTENCEPIECE
TEST(Cli, TextTrainEncodeDecode) {
  TempDir dir;
  auto gen = run("data moving-fashion --quiet --out " + (dir / "mf") + " --videos 40 --seconds 1 --size 16 --images 40");
  ASSERT_EQ(gen.code, 0) << gen.err;
  const std::string manifest = dir / "mf/manifest.jsonl";
  auto train = run("text train --data " + manifest + " --vocab 48 --out " + (dir / "text"));
  ASSERT_EQ(train.code, 0) << train.err;
  EXPECT_NE(train.out.find("48-piece unigram tokenizer on 40 captions"), std::string::npos) << train.out;
  auto enc = run("text encode --text " + (dir / "text") + " a red bag moves left");
  ASSERT_EQ(enc.code, 0) << enc.err;
  auto dec = run("text decode --text " + (dir / "text") + " " + enc.out);
  ASSERT_EQ(dec.code, 0) << dec.err;
  EXPECT_EQ(dec.out, "a red bag moves left\n");
  expect_one_line_error(run("text train --data " + manifest + " --vocab 48 --out " + (dir / "text")), 1,
                        "pass --force");
  expect_one_line_error(run("text train --data " + (dir / "none.jsonl") + " --out " + (dir / "t2")), 1,
                        "none.jsonl");
  expect_one_line_error(run("text train --data " + manifest + " --vocab 4 --out " + (dir / "t2")), 2, "--vocab");
  expect_one_line_error(run("text encode --text " + (dir / "mf") + " hello"), 1, "no text tokenizer here");

  // Token shards: a micro video tokenizer (two steps), two parts of one manifest.
  loong::test::write_bytes(dir / "cfg.json", R"({"preset": "tiny",
    "model": {"image_size": 16, "base_channels": 8, "codebook_size": 64, "codebook_dim": 8},
    "train": {"stages": [{"frames": 1, "steps": 2, "batch_size": 2}], "max_minutes": 0}})");
  ASSERT_EQ(run("tokenizer train --config " + (dir / "cfg.json") + " --data " + manifest + " --out " + (dir / "tok")).code, 0);
  const std::string common = " --data " + manifest + " --tokenizer " + (dir / "tok") + " --text " + (dir / "text") +
                             " --out " + (dir / "shards");
  auto p0 = run("tokenize" + common + " --chunk 5 --shard 0/2");
  ASSERT_EQ(p0.code, 0) << p0.err;
  // 20 one-second videos in part 0 of 2: 7 frames -> chunks of 5 and 1 frames -> 2 + 1 latent
  // frames of 2x2 tokens each.
  EXPECT_NE(p0.out.find("40 samples from 20 entries"), std::string::npos) << p0.out;
  EXPECT_NE(p0.out.find("240 video tokens"), std::string::npos) << p0.out;
  ASSERT_EQ(run("tokenize" + common + " --chunk 5 --shard 1/2").code, 0);
  EXPECT_TRUE(std::filesystem::exists(dir / "shards/part-00000-of-00002.loongshard"));
  EXPECT_TRUE(std::filesystem::exists(dir / "shards/part-00001-of-00002.loongshard"));
  expect_one_line_error(run("tokenize" + common + " --shard 1/2"), 1, "pass --force");
  expect_one_line_error(run("tokenize" + common + " --shard 2/2"), 2, "--shard");
  expect_one_line_error(run("tokenize" + common + " --chunk 6 --force"), 2, "--chunk");

  // Stills are encoded in batches and written in manifest order: 40 stills alone (one batch)
  // give the codes each gets between two videos (a batch of one).
  std::ifstream stills_in(dir / "mf/images.jsonl"), videos_in(manifest);
  std::string still, video, stills, mixed;
  while (std::getline(stills_in, still) && std::getline(videos_in, video)) {
    stills += still + "\n";
    mixed += still + "\n" + video + "\n";
  }
  loong::test::write_bytes(dir / "mf/stills.jsonl", stills);
  loong::test::write_bytes(dir / "mf/mixed.jsonl", mixed);
  for (const char* name : {"stills", "mixed"})
    ASSERT_EQ(run("tokenize --data " + (dir / "mf") + "/" + name + ".jsonl --tokenizer " + (dir / "tok") + " --text " +
                  (dir / "text") + " --chunk 5 --out " + (dir / name))
                  .code,
              0);
  loong::lm::ShardSet alone(dir / "stills"), among(dir / "mixed");
  ASSERT_EQ(alone.size(), 40);
  ASSERT_EQ(among.size(), 40 * 3);  // a still, then a video's two chunks
  // A still's codes do not depend on the batch it was encoded in. One still in
  // ten may differ: LibTorch 2.x's convolutions round differently for a batch
  // of 40 and a batch of 1, and a code whose two nearest entries are almost
  // tied can go either way (2 of 40 stills did in a CI run on 2.6; none on 1.13).
  bool differ = false;
  int same = 0;
  for (int64_t i = 0; i < 40; ++i) {
    const auto a = alone.at(i), b = among.at(3 * i);
    ASSERT_EQ(a.kind, loong::lm::SampleKind::Image);
    ASSERT_EQ(b.kind, loong::lm::SampleKind::Image) << "sample " << 3 * i;
    EXPECT_EQ(among.at(3 * i + 1).kind, loong::lm::SampleKind::Video);
    EXPECT_EQ(a.caption(), b.caption());
    ASSERT_EQ(a.frames * a.tokens_per_frame(), 4);
    same += std::equal(a.video, a.video + 4, b.video);
    differ = differ || !std::equal(a.video, a.video + 4, alone.at(0).video);
  }
  EXPECT_GE(same, 36) << "of 40 stills, encoded the same alone and among videos";
  EXPECT_TRUE(differ) << "different stills, different codes";
}
#endif

// loong train: a run killed (as by kill -9) while writing a checkpoint keeps
// the previous one, and --resume finishes the run from it.
TEST(Cli, TrainSurvivesKillDuringCheckpointAndResumes) {
  TempDir dir;
  loong::test::write_shards(dir / "shards", 8, 8);
  loong::test::write_bytes(dir / "train.json", R"({
    "model": {"dim": 32, "n_layers": 2, "n_heads": 4, "ffn_dim": 64, "max_seq_len": 64},
    "data": "shards",
    "stages": [{"frames": 1, "steps": 3, "batch_size": 4, "lr": 3e-3},
               {"frames": 17, "steps": 3, "batch_size": 2, "image_fraction": 0.5, "lambda": 1}],
    "checkpoint_every": 2, "plot_every": 0})");
  const std::string run_dir = dir / "run";
  ::setenv("LOONG_TEST_KILL_IN_CHECKPOINT", "4", 1);
  auto killed = run("train --config " + (dir / "train.json") + " --out " + run_dir);
  ::unsetenv("LOONG_TEST_KILL_IN_CHECKPOINT");
  EXPECT_NE(killed.code, 0);
  EXPECT_NE(killed.out.find("step 4/6"), std::string::npos) << killed.out;
  EXPECT_TRUE(std::filesystem::exists(run_dir + "/checkpoints/step-00000004.partial"));
  EXPECT_EQ(loong::store::newest_checkpoint(run_dir), run_dir + "/checkpoints/step-00000002");

  auto resumed = run("train --resume " + run_dir);
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resumed from " + run_dir + "/checkpoints/step-00000002 at step 2"), std::string::npos)
      << resumed.out;
  EXPECT_NE(resumed.out.find("step 6/6"), std::string::npos) << resumed.out;
  EXPECT_FALSE(std::filesystem::exists(run_dir + "/checkpoints/step-00000004.partial"));
  EXPECT_EQ(loong::store::newest_checkpoint(run_dir), run_dir + "/checkpoints/step-00000006");
  // The log holds each step once: the steps after the kept checkpoint were trained again.
  EXPECT_EQ(lines(loong::test::read_bytes(run_dir + "/log.jsonl")), 6);

  // A new run from the finished one's weights (fine-tuning); with --resume it is refused.
  auto tuned = run("train --config " + (dir / "train.json") + " --init " + run_dir + " --out " + (dir / "tuned"));
  ASSERT_EQ(tuned.code, 0) << tuned.err;
  EXPECT_NE(tuned.out.find("initialised from " + run_dir), std::string::npos) << tuned.out;
  EXPECT_NE(tuned.out.find("step 6/6"), std::string::npos) << tuned.out;
  expect_one_line_error(run("train --resume " + run_dir + " --init " + run_dir), 2, "--init");

  // Bad input: one line naming what is wrong.
  expect_one_line_error(run("train --out " + (dir / "x")), 2, "--config");
  expect_one_line_error(run("train --config " + (dir / "none.json") + " --out " + (dir / "x")), 1, "none.json");
  expect_one_line_error(run("train --resume " + (dir / "shards")), 1, "no run.json");
  expect_one_line_error(run("train --config tiny --out " + (dir / "x")), 1, "'data'");
  loong::test::write_bytes(dir / "typo.json", R"({"data": "shards", "stages": [{"frames": 1, "setps": 3}]})");
  expect_one_line_error(run("train --config " + (dir / "typo.json") + " --out " + (dir / "x")), 1, "setps");
  loong::test::write_bytes(dir / "broken.json", R"({"data": )");
  expect_one_line_error(run("train --config " + (dir / "broken.json") + " --out " + (dir / "x")), 1, "broken.json");
  auto shown = run("train --config " + (dir / "train.json") + " --show-config");
  ASSERT_EQ(shown.code, 0) << shown.err;
  EXPECT_NE(shown.out.find(dir / "shards"), std::string::npos) << "relative paths resolve against the config's folder";
}

TEST(Cli, GenerateFromARandomBundle) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  TempDir dir;
  const std::string model = dir / "model";
  auto init = run("model init --out " + model);
  ASSERT_EQ(init.code, 0) << init.err;
  auto info = run("model info " + model);
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("\"tokens_per_clip\": 1088"), std::string::npos) << info.out;

  // 12 s at 6.5 fps: a 65-frame clip, then 13 more frames from a second clip.
  const std::string out = dir / "a.mp4";
  auto gen = run("generate --model " + model + " --prompt 'a red shirt moving left' --seconds 12 --out " + out +
                 " --sheet " + (dir / "a.png") + " --report " + (dir / "a.json") + " --upscale 2 --seed 3" +
                 " --save-codes " + (dir / "a.codes"));
  ASSERT_EQ(gen.code, 0) << gen.err;
  // The saved codes decode to the same video, byte for byte (the tokenizer
  // found through the bundle the file names).
  auto dec = run("tokenizer decode " + (dir / "a.codes") + " -o " + (dir / "c.mp4") + " --upscale 2");
  ASSERT_EQ(dec.code, 0) << dec.err;
  EXPECT_EQ(loong::test::read_bytes(out), loong::test::read_bytes(dir / "c.mp4"));
  auto codes_meta = loong::safetensors::read_header(dir / "a.codes").metadata;
  auto settings = nlohmann::json::parse(codes_meta.at("generation"));
  EXPECT_EQ(settings["seed"], 3);
  EXPECT_EQ(settings["clip_plan"].size(), 2u);
  EXPECT_EQ(settings["clip_plan"][1]["prefix_frames"], 5);
  EXPECT_EQ(settings["written_with"]["upscale"], 2);
  EXPECT_EQ(dec.err.find("note:"), std::string::npos) << "the flags were given: " << dec.err;
  // Without them the file is decoded at the codes' size, with a note naming them.
  auto small = run("tokenizer decode " + (dir / "a.codes") + " -o " + (dir / "s.mp4"));
  ASSERT_EQ(small.code, 0) << small.err;
  EXPECT_NE(small.err.find("upscaled 2x; give --upscale 2 --upscale-method bicubic"), std::string::npos) << small.err;
  EXPECT_EQ(loong::video::probe(dir / "s.mp4").streams.at(0).width, 64);
  expect_one_line_error(run("tokenizer decode " + (dir / "a.codes") + " -o " + (dir / "a.codes")), 2, "--output");
  auto enc = run("tokenizer encode --model " + model + " " + out + " -o " + (dir / "e.tok"));
  ASSERT_EQ(enc.code, 0) << enc.err;
  expect_one_line_error(run("tokenizer decode " + (dir / "e.tok") + " -o " + (dir / "e.mp4")), 2,
                        "--model: required");
  EXPECT_NE(gen.out.find("clip 2/2"), std::string::npos) << gen.out;
  EXPECT_NE(gen.out.find("prefill"), std::string::npos) << "a timing summary: " << gen.out;
  auto probe = loong::video::probe(out);
  EXPECT_EQ(probe.streams.at(0).frames, 78);
  EXPECT_EQ(probe.streams.at(0).width, 128);
  EXPECT_TRUE(std::filesystem::exists(dir / "a.png"));
  EXPECT_FALSE(std::filesystem::exists(dir / "a.partial.mp4"));
  auto report = loong::read_json_file(dir / "a.json");
  EXPECT_EQ(report["frames"], 78);
  EXPECT_EQ(report["cfg"], 7.5);  // no scale recorded in the bundle: the paper's
  EXPECT_GT(report["timings_s"]["decode"].get<double>(), 0);
  // The same seed gives the same video.
  auto again = run("generate --model " + model + " --prompt 'a red shirt moving left' --seconds 12 --out " +
                   (dir / "b.mp4") + " --upscale 2 --seed 3 --quiet");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(loong::test::read_bytes(out), loong::test::read_bytes(dir / "b.mp4"));

  // A bundle may record its own guidance scale; --cfg still wins.
  ASSERT_EQ(run("model init --cfg 1.5 --out " + (dir / "m15")).code, 0);
  EXPECT_NE(run("model info " + (dir / "m15")).out.find("\"cfg_scale\": 1.5"), std::string::npos);
  for (const std::string flag : {"", " --cfg 2"}) {
    auto r = run("generate --model " + (dir / "m15") + " --prompt 'a red shirt' --seconds 0.2 --quiet --out " +
                 (dir / "g.mp4") + " --report " + (dir / "g.json") + flag);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(loong::read_json_file(dir / "g.json")["cfg"], flag.empty() ? 1.5 : 2.0) << flag;
  }
  expect_one_line_error(run("model init --cfg 0.5 --out " + (dir / "m05")), 2, "--cfg");
  // Narrow weights for the CPU decode step: recorded in the report.
  auto int8 = run("generate --model " + (dir / "m15") + " --prompt 'a red shirt' --seconds 0.2 --quiet --out " +
                  (dir / "q.mp4") + " --report " + (dir / "q.json") + " --decode-weights int8");
  ASSERT_EQ(int8.code, 0) << int8.err;
  EXPECT_EQ(loong::read_json_file(dir / "q.json")["decode_weights"], "int8");
  // Words the text tokenizer never saw: named in a warning (with --quiet too) and the report; the video is made.
  auto zebra = run("generate --model " + (dir / "m15") + " --prompt 'a red zebra' --seconds 0.2 --quiet --out " +
                   (dir / "z.mp4") + " --report " + (dir / "z.json"));
  ASSERT_EQ(zebra.code, 0) << zebra.err;
  EXPECT_NE(zebra.err.find("warning: the model's text tokenizer never saw 'zebra'"), std::string::npos) << zebra.err;
  EXPECT_EQ(loong::read_json_file(dir / "z.json")["unseen_words"], nlohmann::json({"zebra"}));

  // Without --model: $LOONG_MODEL (else the repository's models/default).
  ::setenv("LOONG_MODEL", (dir / "m15").c_str(), 1);
  auto dflt = run("generate --prompt 'a red shirt' --seconds 0.2 --quiet --out " + (dir / "d.mp4") + " --report " +
                  (dir / "d.json"));
  ::setenv("LOONG_MODEL", (dir / "missing").c_str(), 1);
  auto missing = run("generate --prompt 'a red shirt' --seconds 0.2 --quiet --out " + (dir / "e.mp4"));
  ::unsetenv("LOONG_MODEL");
  ASSERT_EQ(dflt.code, 0) << dflt.err;
  EXPECT_EQ(loong::read_json_file(dir / "d.json")["model"], dir / "m15");
  expect_one_line_error(missing, 1, (dir / "missing") + ": no such model folder");
  // ... and with neither, the repository's default model.
  auto repo = run("generate --prompt 'a red sneaker moving to the right on a black background' --seconds 0.2 --quiet "
                  "--out " + (dir / "r.mp4") + " --report " + (dir / "r.json"));
  ASSERT_EQ(repo.code, 0) << repo.err;
  const std::string used = loong::read_json_file(dir / "r.json")["model"];
  EXPECT_NE(used.find("models/default"), std::string::npos) << used;
  const auto recorded = loong::read_json_file(used + "/loong.json");
  EXPECT_EQ(loong::read_json_file(dir / "r.json")["cfg"], recorded["cfg_scale"]) << "the model's own guidance scale";
  EXPECT_EQ(loong::read_json_file(dir / "r.json")["first_clip_cfg"],
            recorded.value("first_clip_cfg_scale", recorded["cfg_scale"].get<double>()));
  EXPECT_EQ(loong::read_json_file(dir / "r.json")["temperature"], recorded.value("temperature", 1.0))
      << "the model's own temperature";
  EXPECT_EQ(loong::read_json_file(dir / "r.json")["speculative"], 0) << "a small model: one code per call";
  // Greedy with speculation: the same video, byte for byte, in fewer calls.
  const std::string greedy = " --prompt 'a red sneaker moving to the right on a black background' --seconds 3 --top-k 1";
  auto s4 = run("generate" + greedy + " --speculative 4 --out " + (dir / "s4.mp4") + " --report " + (dir / "s4.json"));
  auto s0 = run("generate" + greedy + " --no-speculative --quiet --out " + (dir / "s0.mp4"));
  ASSERT_EQ(s4.code, 0) << s4.err;
  ASSERT_EQ(s0.code, 0) << s0.err;
  EXPECT_EQ(loong::test::read_bytes(dir / "s4.mp4"), loong::test::read_bytes(dir / "s0.mp4"));
  EXPECT_NE(s4.out.find("codes per model call"), std::string::npos) << s4.out;
  const auto s4r = loong::read_json_file(dir / "s4.json");
  EXPECT_EQ(s4r["speculative"], 4);
  EXPECT_GT(s4r["codes_per_call"].get<double>(), 1.0);
  EXPECT_LE(s4r["accepted"].get<int64_t>(), s4r["drafted"].get<int64_t>());

  // A story over time, without re-encoding, continuing a real video.
  loong::test::write_bytes(dir / "story.txt", "0: a red shirt\n9: a blue bag\n");
  loong::video::write(dir / "init.mp4", loong::test::natural_clip(12, 64, 64));
  auto story = run("generate --model " + model + " --prompts " + (dir / "story.txt") + " --seconds 4 --out " +
                   (dir / "c.mkv") + " --no-reencode --init-video " + (dir / "init.mp4") + " --quiet");
  ASSERT_EQ(story.code, 0) << story.err;
  EXPECT_EQ(loong::video::probe(dir / "c.mkv").streams.at(0).frames, 26);

  // Stopped after the second of four clips: the partial file plays and holds
  // exactly the finished clips; nothing is at the output path.
  ::setenv("LOONG_TEST_KILL_AFTER_CLIP", "2", 1);
  auto killed = run("generate --model " + model + " --prompt 'a red shirt' --seconds 30 --out " + (dir / "k.mp4"));
  ::unsetenv("LOONG_TEST_KILL_AFTER_CLIP");
  EXPECT_NE(killed.code, 0);
  EXPECT_FALSE(std::filesystem::exists(dir / "k.mp4"));
  EXPECT_EQ(loong::video::read(dir / "k.partial.mp4").frames.size(0), 65 + 60);
}

TEST(Cli, GenerateBadFlags) {
  TempDir dir;
  const std::string m = " --model " + (dir / "none") + " --out " + (dir / "o.mp4");
  expect_one_line_error(run("generate" + m + " --prompt x --seconds -1"), 2, "--seconds");
  expect_one_line_error(run("generate" + m + " --prompt x --seconds 0"), 2, "--seconds");
  expect_one_line_error(run("generate" + m + " --prompt x --top-k 0"), 2, "--top-k");
  expect_one_line_error(run("generate" + m + " --prompt ''"), 2, "--prompt");
  expect_one_line_error(run("generate" + m + " --prompt '  '"), 2, "--prompt");
  expect_one_line_error(run("generate" + m), 2, "--prompt");
  expect_one_line_error(run("generate" + m + " --prompt x --upscale-method nearest"), 2, "nearest");
  expect_one_line_error(run("generate" + m + " --prompt x --cfg -2"), 2, "--cfg");
  expect_one_line_error(run("generate" + m + " --prompt x --first-clip-cfg -1"), 2, "--first-clip-cfg");
  expect_one_line_error(run("generate" + m + " --prompt x --speculative 99"), 2, "--speculative");
  expect_one_line_error(run("generate" + m + " --prompt x --decode-weights int4"), 2, "--decode-weights");
  expect_one_line_error(run("generate" + m + " --prompt x --overlap-frames -3"), 2, "--overlap-frames");
  expect_one_line_error(run("generate" + m + " --prompt \"$(printf 'a red \\377 shirt')\""), 2, "--prompt: is not UTF-8");
  expect_one_line_error(run("generate" + m + " --prompt x --speculative 2 --no-speculative"), 2, "--no-speculative");
  expect_one_line_error(run("generate" + m + " --prompt x"), 1, "no such model folder");
  expect_one_line_error(run("generate --model " + (dir / "none") + " --prompt x"), 2, "--out");
  expect_one_line_error(run("generate" + m + " --prompts " + (dir / "nofile.txt")), 1, "nofile.txt");
  expect_one_line_error(run("model pack --tokenizer " + (dir / "t") + " --text " + (dir / "x") + " --lm " +
                            (dir / "l") + " --out " + (dir / "b") + " --dtype f8"),
                        2, "--dtype");
  expect_one_line_error(run("model pack --tokenizer " + (dir / "t") + " --text " + (dir / "x") + " --lm " +
                            (dir / "l") + " --out " + (dir / "b") + " --temperature 0"),
                        2, "--temperature");
  expect_one_line_error(run("model pack --tokenizer " + (dir / "t") + " --text " + (dir / "x") + " --lm " +
                            (dir / "l") + " --out " + (dir / "b")),
                        1, (dir / "t") + ": no such model folder");
}

TEST(Cli, SrTrainThenGenerateWithIt) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  TempDir dir;
  for (int i = 0; i < 2; ++i)
    loong::video::write(dir / ("v" + std::to_string(i) + ".mp4"), loong::test::natural_clip(12, 64, 64, i));
  loong::test::write_bytes(dir / "m.jsonl", "{\"video\": \"v0.mp4\", \"caption\": \"a\"}\n"
                                            "{\"video\": \"v1.mp4\", \"caption\": \"b\"}\n");
  auto sr = run("sr train --data " + (dir / "m.jsonl") + " --out " + (dir / "sr") +
                " --size 32 --scale 2 --fps 6.5 --frames 20 --steps 20 --batch 4 --crop 16");
  ASSERT_EQ(sr.code, 0) << sr.err;
  EXPECT_NE(sr.out.find("held-out PSNR"), std::string::npos) << sr.out;
  ASSERT_EQ(run("model init --out " + (dir / "model")).code, 0);
  auto gen = run("generate --model " + (dir / "model") + " --prompt 'a bag' --seconds 1 --sr-model " + (dir / "sr") +
                 " --out " + (dir / "o.mp4") + " --quiet");
  ASSERT_EQ(gen.code, 0) << gen.err;
  EXPECT_EQ(loong::video::probe(dir / "o.mp4").streams.at(0).width, 128);
  expect_one_line_error(run("generate --model " + (dir / "model") + " --prompt x --sr-model " + (dir / "sr") +
                            " --upscale 4 --out " + (dir / "p.mp4")),
                        2, "does not match");
  expect_one_line_error(run("sr train --data " + (dir / "m.jsonl") + " --out " + (dir / "s2") + " --size 8 --crop 16"), 2,
                        "--crop");
}

TEST(Cli, EvalFvdBetweenFolders) {
  TempDir dir;
  std::filesystem::create_directories(dir / "a");
  std::filesystem::create_directories(dir / "b");
  for (int i = 0; i < 3; ++i) {
    loong::video::write(dir / ("a/" + std::to_string(i) + ".mp4"), loong::test::natural_clip(18, 32, 32, i));
    auto dark = (loong::test::natural_clip(18, 32, 32, 10 + i).to(torch::kFloat) * 0.5).to(torch::kUInt8);
    loong::video::write(dir / ("b/" + std::to_string(i) + ".mp4"), dark);
  }
  loong::video::write(dir / "a/short.mp4", loong::test::natural_clip(8, 32, 32, 7));
  write_stats_detector(dir / "d.pt");
  auto r = run("eval fvd --real " + (dir / "a") + " --fake " + (dir / "b") + " --detector " + (dir / "d.pt"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["fvd"].get<double>(), 100);  // half as bright: the mean features are far apart
  EXPECT_EQ(j["real"]["videos"], 3);
  EXPECT_EQ(j["real"]["too_short"], 1);
  auto same = run("eval fvd --real " + (dir / "a") + " --fake " + (dir / "a") + " --detector " + (dir / "d.pt"));
  ASSERT_EQ(same.code, 0) << same.err;
  EXPECT_NEAR(nlohmann::json::parse(same.out)["fvd"].get<double>(), 0, 1e-6);
  expect_one_line_error(run("eval fvd --real " + (dir / "a") + " --fake " + (dir / "none") + " --detector " +
                            (dir / "d.pt")),
                        1, "--fake");
  expect_one_line_error(run("eval fvd --real " + (dir / "a") + " --fake " + (dir / "b") + " --detector " +
                            (dir / "x.pt")),
                        1, "x.pt");
  expect_one_line_error(run("eval fvd --real " + (dir / "a") + " --fake " + (dir / "b") + " --detector " +
                            (dir / "d.pt") + " --frames 40"),
                        1, "at least 2 videos");
}

TEST(Cli, EvalBenchmarkTakesTheLongestVideosCut) {
  TempDir dir;
  std::filesystem::create_directories(dir / "v");
  std::string manifest;
  for (int i = 0; i < 4; ++i) {  // 10, 20, 30, 40 frames at 6.5 fps
    const std::string name = "v/" + std::to_string(i) + ".mp4";
    loong::video::write(dir / name, loong::test::natural_clip(10 * (i + 1), 16, 16, i));
    manifest += "{\"video\": \"" + name + "\", \"caption\": \"clip " + std::to_string(i) + "\", \"k\": " +
                std::to_string(i) + "}\n";
  }
  loong::test::write_bytes(dir / "m.jsonl", manifest);
  auto r = run("eval benchmark --data " + (dir / "m.jsonl") + " --count 2 --seconds 3 --out " + (dir / "b/bench.jsonl"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["videos"], 2);
  EXPECT_EQ(j["too_short"], 1);
  auto m = loong::data::load_manifest(dir / "b/bench.jsonl");
  ASSERT_EQ(m.entries.size(), 2u);
  EXPECT_EQ(m.entries[0].caption, "clip 3");  // the longest first
  EXPECT_EQ(m.entries[1].caption, "clip 2");
  EXPECT_EQ(m.entries[0].path, dir / "v/3.mp4");
  EXPECT_DOUBLE_EQ(m.entries[0].end - m.entries[0].start, 3.0);
  EXPECT_EQ(m.entries[0].extra["k"], 3);
  loong::video::ReadOptions o;
  o.end = m.entries[0].end;
  EXPECT_EQ(loong::video::read(m.entries[0].path, o).frames.size(0), 20);  // 3 s at 6.5 fps, rounded up
  expect_one_line_error(run("eval benchmark --data " + (dir / "m.jsonl") + " --seconds 60 --out " + (dir / "x.jsonl")), 1,
                        "no video is at least");
}

TEST(Cli, EvalClipsim) {
  TempDir dir;
  auto red = torch::zeros({10, 32, 32, 3}, torch::kUInt8);
  red.select(3, 0).fill_(220);
  loong::video::write(dir / "red.mp4", red);
  loong::video::write(dir / "other.mp4", loong::test::natural_clip(10, 32, 32));
  loong::test::write_bytes(dir / "m.jsonl", "{\"video\": \"red.mp4\", \"caption\": \"a red shirt\"}\n"
                                            "{\"video\": \"other.mp4\", \"caption\": \"a red shirt\"}\n");
  loong::test::write_tiny_clip(dir / "clip.pt");
  loong::test::write_test_bpe(dir / "bpe.txt");
  auto r = run("eval clipsim --clip " + (dir / "clip.pt") + " --bpe " + (dir / "bpe.txt") + " --data " +
               (dir / "m.jsonl") + " --max-frames 4");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["videos"], 2);
  EXPECT_EQ(j["frames"], 8);
  const double a = j["per_video"][0]["clipsim"], b = j["per_video"][1]["clipsim"];
  EXPECT_NEAR(j["clipsim"].get<double>(), (a + b) / 2, 1e-9);
  EXPECT_GT(std::abs(a - b), 0.01) << "different videos, different similarity";
  EXPECT_LE(std::abs(a), 1.0);
  expect_one_line_error(run("eval clipsim --clip " + (dir / "clip.pt") + " --bpe " + (dir / "nobpe.txt") + " --data " +
                            (dir / "m.jsonl")),
                        1, "nobpe.txt");
}

TEST(Cli, EvalProbeTrainAndScore) {
  TempDir dir;
  auto train = run("eval probe train --out " + (dir / "probe") + " --size 32 --channels 8 --steps 20 --batch 8 --heldout 8" +
                   " --crop-steps 5 --crop-batch 8");
  ASSERT_EQ(train.code, 0) << train.err;
  auto tj = nlohmann::json::parse(train.out.substr(train.out.find('{')));
  EXPECT_EQ(tj["heldout"]["frames"], 64);
  EXPECT_FALSE(tj.contains("heldout_through_tokenizer"));
  EXPECT_NE(train.out.find("step 25/25"), std::string::npos) << "both phases are counted: " << train.out;
  // Trained on: the crop classifier alone, from a trained probe; its config (32 pixels) wins over --size.
  auto more = run("eval probe train --from " + (dir / "probe") + " --out " + (dir / "probe2") +
                  " --steps 0 --crop-steps 3 --crop-batch 8 --heldout 8");
  ASSERT_EQ(more.code, 0) << more.err;
  EXPECT_EQ(loong::read_json_file(dir / "probe2/config.json")["image_size"], 32);
  expect_one_line_error(run("eval probe train --out " + (dir / "p3") + " --steps 0 --crop-steps 3"), 2, "--from");
  expect_one_line_error(run("eval probe train --from " + (dir / "probe") + " --out " + (dir / "p3") +
                            " --steps 0 --crop-steps 0"),
                        2, "nothing to train");
  expect_one_line_error(run("eval probe train --from " + (dir / "nothing") + " --out " + (dir / "p3") + " --steps 0"), 1,
                        "--from: " + (dir / "nothing") + ": no such probe folder");
  ASSERT_EQ(run("data moving-fashion --quiet --out " + (dir / "mf") + " --videos 2 --seconds 3 --size 32").code, 0);
  auto score = run("eval probe score --probe " + (dir / "probe") + " --data " + (dir / "mf/manifest.jsonl") +
                   " --segment 2 --json " + (dir / "s.json"));
  ASSERT_EQ(score.code, 0) << score.err;
  auto j = loong::read_json_file(dir / "s.json");
  EXPECT_EQ(j["videos"], 2);
  ASSERT_EQ(j["segments"].size(), 2u);  // 3 s in segments of 2 s
  for (const char* k : {"text_match", "identity", "items_seen"}) {
    EXPECT_GE(j[k].get<double>(), 0);
    EXPECT_LE(j[k].get<double>(), 1);
  }
  loong::test::write_bytes(dir / "bad.jsonl", "{\"video\": \"mf/videos/000000.mp4\", \"caption\": \"a sunset\"}\n");
  expect_one_line_error(run("eval probe score --probe " + (dir / "probe") + " --data " + (dir / "bad.jsonl")), 1,
                        "names no");
}

TEST(Cli, EvalLongAgainstRealVideos) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  // --real: the prompts are the captions of real videos, which are scored
  // beside the generated ones, with a probe-feature Fréchet distance per
  // segment and the jump at clip boundaries (12 s: two clips).
  TempDir dir;
  ASSERT_EQ(run("model init --out " + (dir / "model")).code, 0);
  ASSERT_EQ(run("eval probe train --out " + (dir / "probe") + " --size 64 --channels 4 --steps 3 --batch 4 --heldout 8 --crop-steps 0").code,
            0);
  ASSERT_EQ(run("data moving-fashion --out " + (dir / "real") + " --videos 2 --seconds 14 --size 64 --split t10k --quiet").code,
            0);
  auto r = run("eval long --model " + (dir / "model") + " --probe " + (dir / "probe") + " --real " +
               (dir / "real/manifest.jsonl") + " --seconds 12 --segment 5 --out " + (dir / "long"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = loong::read_json_file(dir / "long/report.json");
  EXPECT_EQ(j["videos"], 2);
  EXPECT_EQ(j["real"]["videos"], 2);
  ASSERT_EQ(j["segments"].size(), 3u);  // 78 frames: 33 + 33 + 12
  ASSERT_EQ(j["real"]["segments"].size(), 3u);  // read to 12 s, not 14
  for (const auto& s : j["segments"]) EXPECT_TRUE(s["frechet"].is_number()) << s.dump();
  EXPECT_GT(j["frechet"].get<double>(), 0);
  EXPECT_GT(j["boundary_jump"].get<double>(), 0);
  EXPECT_GT(j["real"]["boundary_jump"].get<double>(), 0);
  EXPECT_GT(j["real"]["frame_change"].get<double>(), 0);  // real items move
  EXPECT_GE(j["frame_change"].get<double>(), 0);
  std::ifstream manifest(dir / "real/manifest.jsonl");
  std::string first;
  std::getline(manifest, first);
  EXPECT_EQ(j["per_video"][0]["prompt"], nlohmann::json::parse(first)["caption"]);
  EXPECT_TRUE(std::filesystem::exists(dir / "long/frechet.png"));
  // Prompts come from one place only.
  loong::test::write_bytes(dir / "p.txt", "a red sneaker on a black background\n");
  expect_one_line_error(run("eval long --model " + (dir / "model") + " --probe " + (dir / "probe") + " --real " +
                            (dir / "real/manifest.jsonl") + " --prompts " + (dir / "p.txt") + " --out " + (dir / "x")),
                        2, "--prompts excludes --real");
}

TEST(Cli, EvalLongGeneratesScoresAndPlots) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  TempDir dir;
  ASSERT_EQ(run("model init --out " + (dir / "model")).code, 0);
  // A probe that also learns from frames through the model's tokenizer is scored on both.
  auto pt = run("eval probe train --out " + (dir / "probe") + " --size 64 --channels 4 --steps 3 --batch 4 --heldout 8" +
                " --crop-steps 2 --crop-batch 4 --tokenizer " + (dir / "model/tokenizer"));
  ASSERT_EQ(pt.code, 0) << pt.err;
  auto pj = nlohmann::json::parse(pt.out.substr(pt.out.find('{')));
  EXPECT_EQ(pj["heldout"]["frames"], 64);
  EXPECT_EQ(pj["heldout_through_tokenizer"]["frames"], 64);
  expect_one_line_error(run("eval probe train --out " + (dir / "p32") + " --size 32 --tokenizer " + (dir / "model/tokenizer")),
                        2, "works on 64-pixel frames");
  expect_one_line_error(run("eval probe train --out " + (dir / "p20") + " --size 20"), 2, "--size: expected a multiple of 8");
  expect_one_line_error(run("eval probe train --out " + (dir / "p20") + " --crop-pixels 30"), 2,
                        "--crop-pixels: expected a multiple of 4");
  loong::test::write_bytes(dir / "prompts.txt", "a red sneaker on a black background\na blue bag on a white background\n");
  auto r = run("eval long --model " + (dir / "model") + " --probe " + (dir / "probe") + " --prompts " +
               (dir / "prompts.txt") + " --seconds 3 --segment 2 --out " + (dir / "long"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = loong::read_json_file(dir / "long/report.json");
  EXPECT_EQ(j["videos"], 2);
  EXPECT_EQ(j["segments"].size(), 2u);
  EXPECT_EQ(loong::video::probe(dir / "long/videos/000001.mp4").streams.at(0).frames, 20);  // round(3 * 6.5)
  for (const char* png : {"text_match.png", "identity.png", "motion.png", "items_seen.png"})
    EXPECT_TRUE(std::filesystem::exists(dir / ("long/" + std::string(png)))) << png;
  EXPECT_EQ(j["decode_weights"], "f32");
  // The decode step's weights in 8 bits (the probe's scores with narrower weights, issue 38).
  r = run("eval long --model " + (dir / "model") + " --probe " + (dir / "probe") + " --prompts " + (dir / "prompts.txt") +
          " --seconds 1 --decode-weights int8 --out " + (dir / "long8"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(loong::read_json_file(dir / "long8/report.json")["decode_weights"], "int8");
  expect_one_line_error(run("eval long --model " + (dir / "model") + " --probe " + (dir / "probe") + " --prompts " +
                            (dir / "prompts.txt") + " --decode-weights f16 --out " + (dir / "x")),
                        2, "--decode-weights");
  loong::test::write_bytes(dir / "bad.txt", "a sunset over the sea\n");
  expect_one_line_error(run("eval long --model " + (dir / "model") + " --probe " + (dir / "probe") + " --prompts " +
                            (dir / "bad.txt") + " --out " + (dir / "x")),
                        1, "names no");
}
