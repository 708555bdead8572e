// Bad input never costs the user a file or a hung process (docs/reliability.md):
// clashing paths, pipes and devices, and model folders that are not ours.
#include <sys/stat.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "cli_util.h"
#include "test_util.h"

using loong::test::expect_one_line_error;
using loong::test::run;
using loong::test::TempDir;

TEST(Cli, ClashingPathsPipesAndDevicesAreRefusedBeforeAnyWork) {
  TempDir dir;
  namespace fs = std::filesystem;
  // generate: two outputs in one file, refused before the model is even looked for.
  const std::string m = "generate --model " + (dir / "none") + " --prompt x --out " + (dir / "v.mp4");
  expect_one_line_error(run(m + " --sheet " + (dir / "v.mp4")), 2, "--sheet");
  expect_one_line_error(run(m + " --report " + dir.path().string() + "/./v.mp4"), 2, "--report");
  expect_one_line_error(run(m + " --sheet " + dir.path().string()), 2, "is a folder");
  loong::test::write_bytes(dir / "file", "x");
  expect_one_line_error(run(m + " --report " + (dir / "file/r.json")), 2, "not a folder");
  // A partial file already there may be someone's: it is kept, and the run refused.
  loong::test::write_bytes(dir / "v.partial.mp4", "someone's");
  expect_one_line_error(run(m), 2, "v.partial.mp4");
  EXPECT_EQ(loong::test::read_bytes(dir / "v.partial.mp4"), "someone's");
  fs::remove(dir / "v.partial.mp4");
  loong::test::write_bytes(dir / "story.txt", "a red shirt\n");
  expect_one_line_error(run("generate --model " + (dir / "none") + " --prompts " + (dir / "story.txt") + " --out " +
                            (dir / "v.mp4") + " --report " + (dir / "story.txt")),
                        2, "is also --prompts");
  EXPECT_EQ(loong::test::read_bytes(dir / "story.txt"), "a red shirt\n");
  loong::test::write_bytes(dir / "bad.txt", "a red \xff shirt\n");
  expect_one_line_error(run("generate --model " + (dir / "none") + " --prompts " + (dir / "bad.txt") + " --out " +
                            (dir / "v.mp4")),
                        1, "bad.txt:1: is not UTF-8");
  // A command never writes over what it reads.
  loong::test::write_bytes(dir / "a.mp4", "precious");
  expect_one_line_error(run("video convert " + (dir / "a.mp4") + " " + dir.path().string() + "/../" +
                            dir.path().filename().string() + "/a.mp4"),
                        1, "is also input");
  expect_one_line_error(run("video sheet " + (dir / "a.mp4") + " " + (dir / "a.mp4")), 1, "is also input");
  EXPECT_EQ(loong::test::read_bytes(dir / "a.mp4"), "precious");
  // Pipes and devices: refused at once, never read (a pipe's open would wait
  // forever; /dev/zero never ends).
  ASSERT_EQ(::mkfifo((dir / "p.mp4").c_str(), 0600), 0);
  expect_one_line_error(run("video info " + (dir / "p.mp4")), 1, "got a pipe");
  ASSERT_EQ(::mkfifo((dir / "p.safetensors").c_str(), 0600), 0);
  expect_one_line_error(run("checkpoint info " + (dir / "p.safetensors")), 1, "expected a regular file");
  loong::test::write_bytes(dir / "m.jsonl", "{\"video\": \"p.mp4\", \"caption\": \"a pipe\"}\n");
  auto check = run("data check " + (dir / "m.jsonl"));
  EXPECT_EQ(check.code, 1);
  EXPECT_NE(check.out.find("got a pipe"), std::string::npos) << check.out << check.err;
  expect_one_line_error(run("data check /dev/zero"), 1, "/dev/zero: expected a regular file");
  loong::test::write_bytes(dir / "empty.jsonl", "");
  expect_one_line_error(run("data check " + (dir / "empty.jsonl")), 1, "has no entries");
  expect_one_line_error(run("generate --model " + (dir / "none") + " --out " + (dir / "v.mp4") + " --prompts /dev/zero"),
                        1, "/dev/zero: expected a regular file");
}

TEST(Cli, ModelFolderReplacesOnlyBundles) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  TempDir dir;
  namespace fs = std::filesystem;
  // Someone's folder at --out, even with --force: refused, untouched.
  fs::create_directories(dir / "mine");
  fs::create_directories(dir / "b.partial");
  loong::test::write_bytes(dir / "mine/notes.txt", "keep");
  expect_one_line_error(run("model init --force --out " + (dir / "mine")), 1, "not a model bundle");
  EXPECT_EQ(loong::test::read_bytes(dir / "mine/notes.txt"), "keep");
  fs::create_directories(dir / "repo/.git");  // hidden files are someone's too
  expect_one_line_error(run("model init --force --out " + (dir / "repo")), 1, "not a model bundle");
  EXPECT_TRUE(fs::exists(dir / "repo/.git"));
  loong::test::write_bytes(dir / "plain", "keep");
  expect_one_line_error(run("model init --force --out " + (dir / "plain")), 1, "not a model bundle");
  EXPECT_EQ(loong::test::read_bytes(dir / "plain"), "keep");
  // Something of someone's where the partial folder goes.
  loong::test::write_bytes(dir / "b.partial/mine.txt", "keep");
  expect_one_line_error(run("model init --out " + (dir / "b")), 1, "not made by loong");
  EXPECT_EQ(loong::test::read_bytes(dir / "b.partial/mine.txt"), "keep");
  EXPECT_FALSE(fs::exists(dir / "b"));
  // "DIR/" is DIR: no DIR/.partial left behind; a bundle is replaced with --force.
  ASSERT_EQ(run("model init --out " + (dir / "c") + "/").code, 0);
  EXPECT_TRUE(fs::exists(dir / "c/loong.json"));
  EXPECT_FALSE(fs::exists(dir / "c/.partial"));
  EXPECT_FALSE(fs::exists(dir / "c.partial"));
  expect_one_line_error(run("model init --out " + (dir / "c")), 1, "--force");
  auto again = run("model init --force --out " + (dir / "c"));
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_FALSE(fs::exists(dir / "c.old"));
}


// A full disk, simulated by a file-size limit: a write past it fails (EFBIG) as
// one on a full disk does (ENOSPC). scripts/full_disk_trials.sh fills a real one.
TEST(Cli, AFailedWriteKeepsTheExistingVideo) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  TempDir dir;
  ASSERT_EQ(run("model init --out " + (dir / "m")).code, 0);
  const std::string out = dir / "v.mp4", gen = "generate --model " + (dir / "m") + " --quiet --out " + out;
  ASSERT_EQ(run(gen + " --prompt 'a red shirt' --seconds 0.2").code, 0);
  const std::string before = loong::test::read_bytes(out);
  auto r = run(gen + " --prompt 'a blue bag' --seconds 20 --upscale 4", "trap '' XFSZ; ulimit -f 64; ");
  expect_one_line_error(r, 1, "write failed");
  EXPECT_EQ(loong::test::read_bytes(out), before);
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}
