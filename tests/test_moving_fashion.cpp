// moving-fashion: determinism, captions that agree with the ground truth and
// with the pixels, motion, splits, scene changes.
#include "loong/data/moving_fashion.h"

#include <algorithm>
#include <cmath>

#include "test_util.h"

using namespace loong::data;

namespace {

const FashionMnist& train_items() {
  static FashionMnist fm = load_fashion_mnist("train");
  return fm;
}

MovingFashionOptions small(uint64_t seed = 3) {
  MovingFashionOptions o;
  o.size = 64;
  o.seconds = 4;
  o.fps = 6.5;
  o.seed = seed;
  return o;
}

const NamedColour& colour(const std::string& name) {
  for (const auto& c : kItemColours) if (name == c.name) return c;
  for (const auto& c : kBackgrounds) if (name == c.name) return c;
  throw std::runtime_error("unknown colour " + name);
}

}  // namespace

TEST(FashionMnist, LoadsBothSplits) {
  const auto& fm = train_items();
  EXPECT_EQ(fm.images.sizes(), (std::vector<int64_t>{60000, 28, 28}));
  auto test = load_fashion_mnist("t10k");
  EXPECT_EQ(test.images.size(0), 10000);
  EXPECT_EQ(test.labels.bincount().size(0), 10);
  loong::test::expect_error([] { load_fashion_mnist("valid"); }, {"split", "'valid'"});
  loong::test::expect_error([] { load_fashion_mnist("train", "/nonexistent"); }, {"/nonexistent", "not found"});
}

TEST(MovingFashion, DeterministicForASeed) {
  auto o = small();
  auto a = make_video(train_items(), o, 5), b = make_video(train_items(), o, 5);
  EXPECT_TRUE(torch::equal(a.frames, b.frames));
  EXPECT_EQ(a.caption, b.caption);
  EXPECT_EQ(a.truth, b.truth);
  auto c = make_video(train_items(), small(4), 5), d = make_video(train_items(), o, 6);
  EXPECT_FALSE(torch::equal(a.frames, c.frames));
  EXPECT_FALSE(torch::equal(a.frames, d.frames));
  auto i1 = make_image(train_items(), o, 0), i2 = make_image(train_items(), o, 0);
  EXPECT_TRUE(torch::equal(i1.frames, i2.frames));
  EXPECT_EQ(i1.frames.sizes(), (std::vector<int64_t>{1, 64, 64, 3}));
}

TEST(MovingFashion, CaptionsAgreeWithGroundTruthAndPixels) {
  auto o = small();
  o.two_items = 0;  // one item: every non-background pixel belongs to it
  for (int64_t idx = 0; idx < 12; ++idx) {
    auto s = make_video(train_items(), o, idx);
    SCOPED_TRACE(s.caption);
    EXPECT_EQ(s.frames.size(0), frame_count(o));
    EXPECT_EQ(s.frames.size(0), 26);  // round(4 s * 6.5 fps)
    const auto& item = s.truth["items"][0];
    const std::string bg = s.truth["per_frame"][0]["background"];
    const std::string it_colour = item["colour"], cls = item["class_name"], dir = item["direction"];
    EXPECT_NE(s.caption.find(it_colour + " " + cls), std::string::npos);
    EXPECT_NE(s.caption.find(bg), std::string::npos);
    EXPECT_NE(s.caption.find(dir), std::string::npos);
    // Pixels: far from the item the frame is the background colour; the item's
    // pixels point in the direction of its tint.
    auto f = s.frames[0].to(torch::kFloat);
    const auto& bc = colour(bg);
    auto bgv = torch::tensor({float(bc.r), float(bc.g), float(bc.b)});
    auto diff = (f - bgv).abs().sum(-1);
    auto item_mask = diff > 60;
    ASSERT_GT(item_mask.sum().item<int64_t>(), 20);
    const double x = s.truth["per_frame"][0]["items"][0]["x"], y = s.truth["per_frame"][0]["items"][0]["y"];
    const double half = double(s.truth["item_size"]) / 2 + 0.02;
    auto ys = torch::arange(64).view({64, 1}).to(torch::kFloat) / 64, xs = torch::arange(64).view({1, 64}).to(torch::kFloat) / 64;
    auto outside = ((xs - x).abs() > half) | ((ys - y).abs() > half);
    EXPECT_EQ((item_mask & outside).sum().item<int64_t>(), 0) << "item pixels must lie inside its box";
    // Opaque item pixels are the tint scaled by the item's texture: among the 8
    // named colours, the caption's must be the one most pixels are parallel to.
    auto px = f.index({item_mask});  // [N, 3]
    std::string best;
    int64_t best_count = -1;
    for (const auto& c : kItemColours) {
      auto v = torch::tensor({float(c.r), float(c.g), float(c.b)}).view({1, 3});
      int64_t n = (torch::cosine_similarity(px, v, 1) > 0.995).sum().item<int64_t>();
      if (n > best_count) { best_count = n; best = c.name; }
    }
    EXPECT_EQ(best, it_colour);
  }
}

TEST(MovingFashion, ItemsMoveAtTheirSpeedAndBounce) {
  auto o = small(11);
  o.two_items = 0;
  o.seconds = 20;
  auto s = make_video(train_items(), o, 0);
  const auto& pf = s.truth["per_frame"];
  const double speed = s.truth["items"][0]["speed"] == "slow" ? 0.15 : 0.35;
  const double step = speed / o.fps;  // in frame widths per frame
  bool bounced = false;
  for (size_t t = 1; t < pf.size(); ++t) {
    double dx = double(pf[t]["items"][0]["x"]) - double(pf[t - 1]["items"][0]["x"]);
    double dy = double(pf[t]["items"][0]["y"]) - double(pf[t - 1]["items"][0]["y"]);
    double d = std::sqrt(dx * dx + dy * dy);
    EXPECT_LE(d, step + 1e-3);
    if (d < step - 1e-3) bounced = true;  // a wall shortens one step
    for (const char* k : {"x", "y"}) {
      EXPECT_GE(double(pf[t]["items"][0][k]), 0.0);
      EXPECT_LE(double(pf[t]["items"][0][k]), 1.0);
    }
  }
  EXPECT_TRUE(bounced) << "in 20 s an item crosses the frame and bounces";
  EXPECT_GT((s.frames[1].to(torch::kInt) - s.frames[0].to(torch::kInt)).abs().sum().item<int64_t>(), 0);
}

TEST(MovingFashion, SceneChangesAreNarratedAndRecorded) {
  auto o = small(2);
  o.seconds = 35;
  o.scene_changes = 1;
  auto s = make_video(train_items(), o, 1);
  ASSERT_EQ(s.truth["events"].size(), 3u) << "one change in each 10 s window after the first";
  for (const auto& ev : s.truth["events"]) {
    const int64_t f = ev["frame"];
    if (ev["type"] == "background") {
      EXPECT_NE(s.caption.find("then the background turns " + ev["background"].get<std::string>()), std::string::npos);
      EXPECT_EQ(s.truth["per_frame"][f]["background"], ev["background"]);
      EXPECT_NE(s.truth["per_frame"][f - 1]["background"], ev["background"]);
    } else {
      EXPECT_NE(s.caption.find(" leaves and "), std::string::npos);
      bool present = false;
      for (const auto& it : s.truth["per_frame"][f]["items"]) present |= it["id"] == ev["enters"];
      for (const auto& it : s.truth["per_frame"][f]["items"]) EXPECT_NE(it["id"], ev["leaves"]);
      EXPECT_TRUE(present);
    }
  }
}

TEST(MovingFashion, HeldOutSplitUsesUnseenItems) {
  auto o = small();
  o.split = "t10k";
  auto test_items = load_fashion_mnist("t10k");
  auto s = make_video(test_items, o, 0);
  EXPECT_EQ(s.truth["split"], "t10k");
  EXPECT_LT(s.truth["items"][0]["source_index"].get<int64_t>(), 10000);
}

TEST(MovingFashion, OptionValidation) {
  auto o = small();
  o.size = 8;
  loong::test::expect_error([&] { validate(o); }, {"--size", "16 to 1024"});
  o = small();
  o.videos = 0;
  loong::test::expect_error([&] { validate(o); }, {"nothing to generate"});
  o = small();
  o.scene_changes = 2;
  loong::test::expect_error([&] { validate(o); }, {"--scene-changes"});
}

// The second default model's world (docs/data.md, "Worlds"): larger items,
// chosen classes, items that bounce off each other. Two items must never hide
// each other (their squares may touch, not overlap), every item comes from
// the chosen classes, and the default world draws exactly as before.
TEST(MovingFashion, WorldOfLargeItemsFromChosenClassesThatBounce) {
  auto o = small(6);
  set_world(o, {{"item_size", 0.4375}, {"classes", {0, 1, 3, 7, 8, 9}}, {"two_items", 1.0}, {"items_bounce", true}},
            "test world");
  ASSERT_EQ(o.classes, (std::vector<int>{0, 1, 3, 7, 8, 9}));
  o.seconds = 25;
  o.scene_changes = 1;  // swaps bring in items that must start clear of the others
  const double width = 28.0 / 64;
  int64_t two_item_frames = 0, near = 0;
  for (int64_t idx = 0; idx < 10; ++idx) {
    auto s = make_video(train_items(), o, idx);
    EXPECT_DOUBLE_EQ(s.truth["item_size"].get<double>(), width);
    for (const auto& it : s.truth["items"])
      EXPECT_NE(std::find(o.classes.begin(), o.classes.end(), it["class"].get<int>()), o.classes.end()) << it.dump();
    for (const auto& f : s.truth["per_frame"]) {
      const auto& items = f["items"];
      for (size_t i = 0; i < items.size(); ++i)
        for (size_t j = i + 1; j < items.size(); ++j) {
          const double dx = std::abs(items[i]["x"].get<double>() - items[j]["x"].get<double>());
          const double dy = std::abs(items[i]["y"].get<double>() - items[j]["y"].get<double>());
          EXPECT_GE(std::max(dx, dy), width - 2e-4) << "video " << idx << ": two items overlap";
          ++two_item_frames;
          near += std::max(dx, dy) < width + 0.05;
        }
    }
  }
  EXPECT_GT(two_item_frames, 500);
  EXPECT_GT(near, 10) << "items meet and bounce, not only pass far apart";
  // One item fills about 28 pixels: its pixels off the background span more
  // than the default world's 20.
  auto one = o;
  one.two_items = 0;
  auto s = make_image(train_items(), one, 3);
  const auto& bgc = colour(s.truth["per_frame"][0]["background"].get<std::string>());
  auto bg = torch::tensor({int(bgc.r), int(bgc.g), int(bgc.b)}).view({1, 1, 3});
  auto mask = (s.frames[0].to(torch::kInt) - bg).abs().sum(2) > 30;
  auto rows = mask.any(1).nonzero(), cols = mask.any(0).nonzero();
  const int64_t extent = std::max(rows.max().item<int64_t>() - rows.min().item<int64_t>(),
                                  cols.max().item<int64_t>() - cols.min().item<int64_t>()) + 1;
  EXPECT_GT(extent, 20);
  EXPECT_LE(extent, 28);
  // Naming all ten classes is the default world, draw for draw.
  auto all = small(6), plain = small(6);
  set_world(all, {{"classes", {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}}, "test world");
  EXPECT_TRUE(all.classes.empty());
  EXPECT_TRUE(torch::equal(make_video(train_items(), all, 2).frames, make_video(train_items(), plain, 2).frames));
  // The world round-trips through dataset.json's "world".
  MovingFashionOptions back;
  set_world(back, world_json(o), "round trip");
  EXPECT_EQ(world_json(back), world_json(o));
}

TEST(MovingFashion, WorldAndClassesAreValidated) {
  EXPECT_EQ(parse_classes("0, dress,ANKLE BOOT,3", "--classes"), (std::vector<int>{0, 3, 9}));
  EXPECT_TRUE(parse_classes("0,1,2,3,4,5,6,7,8,9", "--classes").empty()) << "all ten: the default world";
  loong::test::expect_error([] { parse_classes("0,jacket", "--classes"); }, {"--classes", "'jacket'", "ankle boot"});
  loong::test::expect_error([] { parse_classes("10", "--classes"); }, {"--classes", "'10'"});
  loong::test::expect_error([] { parse_classes("1,,2", "--classes"); }, {"--classes", "''"});
  MovingFashionOptions o;
  loong::test::expect_error([&] { set_world(o, {{"classes", {1, 12}}}, "data/dataset.json: world"); },
                            {"data/dataset.json: world", "classes", "12"});
  loong::test::expect_error([&] { set_world(o, {{"item_size", 0.9}}, "w"); }, {"w", "item_size"});
  loong::test::expect_error([&] { set_world(o, {{"items_bounce", 1}}, "w"); }, {"w", "items_bounce"});
  loong::test::expect_error([&] { set_world(o, nlohmann::json::array(), "w"); }, {"w", "JSON object"});
  o = small();
  o.item_size = 0.6;
  loong::test::expect_error([&] { validate(o); }, {"--item-size"});
}
