// Decoding manifests: data check, the training-time loader's skip-and-count
// rule, and a written moving-fashion dataset read back through its manifest.
#include "loong/core/json_util.h"
#include "loong/data/dataset.h"
#include "loong/data/moving_fashion.h"
#include "test_util.h"

using namespace loong::data;
using loong::test::expect_error;
using loong::test::TempDir;

namespace {

// A manifest of `good` real clips and `bad` broken entries, interleaved.
std::string mixed_manifest(const TempDir& dir, int good, int bad) {
  loong::video::write(dir / "clip.mp4", loong::test::natural_clip(13, 32, 32), {});
  loong::test::write_bytes(dir / "broken.mp4", "garbage");
  std::string text;
  const int total = good + bad;
  for (int i = 0; i < total; ++i) {
    bool is_bad = i % 2 == 1 && bad-- > 0;
    text += std::string("{\"video\": \"") + (is_bad ? "broken.mp4" : "clip.mp4") + "\", \"caption\": \"c" +
            std::to_string(i) + "\"}\n";
  }
  loong::test::write_bytes(dir / "m.jsonl", text);
  return dir / "m.jsonl";
}

}  // namespace

TEST(Dataset, CheckReportsEveryBadEntry) {
  TempDir dir;
  auto m = load_manifest(mixed_manifest(dir, 4, 2));
  ClipOptions o;
  o.read.fps = 6.5;
  o.read.size = 16;
  auto bad = check_manifest(m, o);
  ASSERT_EQ(bad.size(), 2u);
  EXPECT_EQ(bad[0].index, 1u);
  EXPECT_NE(bad[0].reason.find("broken.mp4"), std::string::npos);
  o.frames = 14;  // 13 frames at 6.5 fps = 2 s: one short of 14
  EXPECT_EQ(check_manifest(m, o).size(), 6u);
}

TEST(Dataset, LoaderSkipsAndCountsThenStops) {
  TempDir dir;
  ClipOptions o;
  o.read.fps = 6.5;
  o.read.size = 16;
  o.frames = 8;
  o.max_bad_fraction = 0.25;
  o.min_samples = 4;
  ClipDataset ds(load_manifest(mixed_manifest(dir, 6, 2)), o);
  auto c0 = ds.get(0);
  ASSERT_TRUE(c0.has_value());
  EXPECT_EQ(c0->frames.sizes(), (std::vector<int64_t>{8, 16, 16, 3}));
  EXPECT_EQ(c0->caption, "c0");
  EXPECT_FALSE(ds.get(1).has_value());
  EXPECT_EQ(ds.bad(), 1);
  EXPECT_TRUE(ds.get(2).has_value());
  EXPECT_TRUE(ds.get(4).has_value());  // 1 bad of 4: at the limit, not over it
  expect_error([&] { ds.get(3); }, {"m.jsonl", "too many bad samples: 2 of 5", "broken.mp4"});
}

TEST(Dataset, WrittenMovingFashionReadsBackThroughItsManifest) {
  TempDir dir;
  MovingFashionOptions o;
  o.videos = 3;
  o.images = 2;
  o.seconds = 3;
  o.size = 64;
  o.seed = 7;
  auto info = write_moving_fashion(o, dir / "mf");
  EXPECT_EQ(info["frames_per_video"], 20);
  auto m = load_manifest(dir / "mf/manifest.jsonl");
  ASSERT_EQ(m.entries.size(), 3u);
  auto stills = load_manifest(dir / "mf/images.jsonl");
  ASSERT_EQ(stills.entries.size(), 2u);
  EXPECT_TRUE(std::filesystem::exists(dir / "mf/sheet.png"));
  ClipOptions co;  // native rate and size
  auto fm = load_fashion_mnist("train");
  for (size_t i = 0; i < m.entries.size(); ++i) {
    auto clip = load_clip(m, i, co);
    auto truth = loong::read_json_file(m.path.substr(0, m.path.rfind('/') + 1) + m.entries[i].extra["truth"].get<std::string>());
    EXPECT_EQ(clip.frames.size(0), truth["frames"].get<int64_t>());
    EXPECT_EQ(clip.caption, truth["caption"]);
    auto reference = make_video(fm, o, static_cast<int64_t>(i));
    EXPECT_GE(loong::test::psnr(clip.frames, reference.frames), 32.0) << "the MP4 holds the rendered frames";
  }
  auto still = load_clip(stills, 0, co);
  EXPECT_TRUE(torch::equal(still.frames, make_image(fm, o, 0).frames)) << "PNG stills are lossless";
  // A non-empty folder is refused unless overwriting was asked for.
  expect_error([&] { write_moving_fashion(o, dir / "mf"); }, {"mf", "not empty", "--force"});
  write_moving_fashion(o, dir / "mf", false, true);
  // Same options, same bytes: the dataset is deterministic on disk too.
  write_moving_fashion(o, dir / "mf2");
  for (const char* f : {"videos/000000.mp4", "videos/000001.mp4", "videos/000002.mp4", "images/000000.png"})
    EXPECT_TRUE(loong::test::read_bytes(dir / "mf/" + f) == loong::test::read_bytes(dir / "mf2/" + f)) << f;
}

TEST(Dataset, MovingFashionInPartsEqualsOneProcess) {
  TempDir dir;
  MovingFashionOptions o;
  o.videos = 5;
  o.images = 4;
  o.seconds = 1;
  o.size = 32;
  o.seed = 3;
  write_moving_fashion(o, dir / "one");
  // Three parts into one folder, in any order: the last one merges.
  auto r1 = write_moving_fashion_part(o, dir / "parts", 1, 3);
  EXPECT_FALSE(r1.merged);
  EXPECT_EQ(r1.parts_present, 1);
  EXPECT_FALSE(std::filesystem::exists(dir / "parts/manifest.jsonl"));
  EXPECT_TRUE(std::filesystem::exists(dir / "parts/videos/000001.mp4"));
  EXPECT_FALSE(std::filesystem::exists(dir / "parts/videos/000000.mp4")) << "part 1 writes only its share";
  // A part with other options is refused before it renders, naming the difference.
  MovingFashionOptions other = o;
  other.seed = 4;
  expect_error([&] { write_moving_fashion_part(other, dir / "parts", 2, 3); },
               {"part-00001-of-00003.json", "seed 4 here, 3 there", "--force"});
  EXPECT_FALSE(std::filesystem::exists(dir / "parts/videos/000002.mp4"));
  // With --force a stale part (other options) counts as absent: not merged from.
  auto forced = write_moving_fashion_part(other, dir / "parts", 2, 3, false, true);
  EXPECT_EQ(forced.parts_present, 1);
  write_moving_fashion_part(o, dir / "parts", 2, 3, false, true);  // part 2 anew, with the right options
  // A part already written is merged, not rendered again (a restarted job).
  const auto stamp = std::filesystem::last_write_time(dir / "parts/videos/000001.mp4");
  EXPECT_EQ(write_moving_fashion_part(o, dir / "parts", 1, 3).parts_present, 2);
  EXPECT_EQ(std::filesystem::last_write_time(dir / "parts/videos/000001.mp4"), stamp);
  auto r0 = write_moving_fashion_part(o, dir / "parts", 0, 3);
  EXPECT_TRUE(r0.merged);
  EXPECT_EQ(r0.parts_present, 3);
  for (const char* f : {"manifest.jsonl", "images.jsonl", "dataset.json", "videos/000000.mp4", "videos/000004.mp4",
                        "videos/000003.json", "images/000002.png", "images/000003.png"})
    EXPECT_TRUE(loong::test::read_bytes(dir / "one/" + f) == loong::test::read_bytes(dir / "parts/" + f)) << f;
  // A finished dataset is not written over by mistake.
  expect_error([&] { write_moving_fashion_part(o, dir / "parts", 2, 3); }, {"parts", "finished dataset", "--force"});
  expect_error([&] { write_moving_fashion_part(o, dir / "x", 3, 3); }, {"--shard", "3 of 3"});
}
