// Evaluation metrics: the Fréchet distance against values computed by hand and
// by an independent method, feature statistics, and the detector pipeline with
// small TorchScript networks built here.
#include <algorithm>
#include <cmath>
#include <map>
#include <cstdlib>

#include <torch/script.h>

#include "loong/eval/caption.h"
#include "loong/eval/clipsim.h"
#include "loong/eval/fvd.h"
#include "loong/eval/metrics.h"
#include "loong/eval/probe.h"
#include "loong/eval/probe_score.h"
#include "loong/eval/probe_train.h"
#include "loong/data/moving_fashion.h"
#include "detector_util.h"
#include "test_util.h"

using namespace loong::eval;
using loong::test::expect_error;
using loong::test::TempDir;

namespace {

torch::Tensor random_spd(int64_t d, uint64_t seed) {
  torch::manual_seed(seed);
  auto a = torch::randn({d, d}, torch::kDouble);
  return a.matmul(a.t()) + 0.1 * torch::eye(d, torch::kDouble);
}

// Tr((S1 S2)^1/2) from the eigenvalues of the non-symmetric product: a
// different route from the symmetric one the library takes.
double trace_sqrt_product(const torch::Tensor& s1, const torch::Tensor& s2) {
  auto ev = at::linalg_eigvals(s1.matmul(s2));
  return torch::real(ev).clamp_min(0).sqrt().sum().item<double>();
}

// A probe for 32-pixel frames, small enough to train in a test.
ProbeConfig small_probe() {
  ProbeConfig c;
  c.image_size = 32;
  c.channels = 8;
  c.features = 64;
  return c;
}

}  // namespace

TEST(Eval, FrechetDistanceArithmetic) {
  auto d = torch::kDouble;
  // Identical Gaussians: 0.
  auto s = random_spd(5, 1);
  auto mu = torch::randn({5}, d);
  EXPECT_NEAR(frechet_distance(mu, s, mu, s), 0, 1e-8);
  // 1-D: (mu1 - mu2)^2 + (sd1 - sd2)^2.
  EXPECT_NEAR(frechet_distance(torch::tensor({1.0}, d), torch::tensor({{4.0}}, d), torch::tensor({3.0}, d),
                               torch::tensor({{9.0}}, d)),
              4 + 1, 1e-10);
  // By hand: S1 = [[2, 1], [1, 2]] (eigenvalues 3 and 1), S2 = I, means 1 apart in each dimension:
  // 2 + tr(S1) + tr(S2) - 2 (sqrt 3 + 1) = 6 - 2 sqrt 3.
  auto s1 = torch::tensor({{2.0, 1.0}, {1.0, 2.0}}, d);
  EXPECT_NEAR(frechet_distance(torch::zeros({2}, d), s1, torch::ones({2}, d), torch::eye(2, d)), 6 - 2 * std::sqrt(3.0),
              1e-10);
  // Random full covariances against the eigenvalues of S1 S2.
  for (uint64_t seed : {2, 3, 4}) {
    auto a = random_spd(8, seed), b = random_spd(8, seed + 10);
    auto m1 = torch::randn({8}, d), m2 = torch::randn({8}, d);
    const double expected = (m1 - m2).pow(2).sum().item<double>() + a.trace().item<double>() + b.trace().item<double>() -
                            2 * trace_sqrt_product(a, b);
    EXPECT_NEAR(frechet_distance(m1, a, m2, b), expected, 1e-7 * std::abs(expected));
    EXPECT_NEAR(frechet_distance(m1, a, m2, b), frechet_distance(m2, b, m1, a), 1e-7 * std::abs(expected));
  }
  // Rank-deficient covariances (fewer samples than dimensions) stay finite and >= 0.
  auto x = torch::randn({3, 10}, d), y = torch::randn({3, 10}, d) + 1;
  FeatureStats fx, fy;
  fx.add(x);
  fy.add(y);
  const double fd = frechet_distance(fx.mean(), fx.covariance(), fy.mean(), fy.covariance());
  EXPECT_TRUE(std::isfinite(fd));
  EXPECT_GT(fd, 0);
}

TEST(Eval, FeatureStatsMatchDirectMoments) {
  torch::manual_seed(5);
  auto f = torch::randn({37, 6}, torch::kDouble) * 3 + 2;
  FeatureStats s;
  s.add(f.narrow(0, 0, 10));
  s.add(f.narrow(0, 10, 27));
  EXPECT_EQ(s.count(), 37);
  auto mu = f.mean(0);
  auto c = (f - mu).t().matmul(f - mu) / 36.0;
  EXPECT_TRUE(torch::allclose(s.mean(), mu, 1e-10, 1e-10));
  EXPECT_TRUE(torch::allclose(s.covariance(), c, 1e-9, 1e-9));
  FeatureStats one;
  one.add(f.narrow(0, 0, 1));
  expect_error([&] { one.covariance(); }, {"at least 2"});
  expect_error([&] { s.add(torch::zeros({2, 5})); }, {"width 5"});
}

TEST(Eval, TorchScriptDetectors) {
  TempDir dir;
  {
    // StyleGAN-V's signature: forward(x, rescale, resize, return_features).
    loong::test::write_stats_detector(dir / "stats.pt");
    // forward(x) alone: gets 224 x 224 frames.
    torch::jit::Module p("Plain");
    p.define(R"(
def forward(self, x):
    return torch.cat([x.float().mean(dim=[2, 3, 4]), torch.full([x.size(0), 1], float(x.size(3)))], 1)
)");
    p.save(dir / "plain.pt");
    torch::jit::Module bad("Bad");
    bad.define(R"(
def forward(self, x, y):
    return x
)");
    bad.save(dir / "bad.pt");
  }
  auto clips = torch::stack({loong::test::natural_clip(4, 16, 16, 1), loong::test::natural_clip(4, 16, 16, 2)});
  VideoFeatureNet stats(dir / "stats.pt", torch::kCPU);
  auto f = stats.features(clips);
  auto x = clips.permute({0, 4, 1, 2, 3}).to(torch::kFloat);
  auto expected = torch::cat({x.mean({2, 3, 4}), x.std({2, 3, 4})}, 1).to(torch::kDouble);
  EXPECT_TRUE(torch::allclose(f, expected, 1e-4, 1e-4));

  VideoFeatureNet plain(dir / "plain.pt", torch::kCPU);
  auto g = plain.features(clips);
  EXPECT_EQ(g.size(1), 4);
  EXPECT_EQ(g[0][3].item<double>(), 224);
  // Bilinear resizing keeps the mean of a smooth image close.
  EXPECT_TRUE(torch::allclose(g.narrow(1, 0, 3), x.mean({2, 3, 4}).to(torch::kDouble), 0, 2.0));

  expect_error([&] { VideoFeatureNet(dir / "bad.pt", torch::kCPU); }, {"bad.pt", "forward(x)"});
  expect_error([&] { VideoFeatureNet(dir / "none.pt", torch::kCPU); }, {"none.pt", "no such file", "detector"});
  loong::test::write_bytes(dir / "junk.pt", "junk");
  expect_error([&] { VideoFeatureNet(dir / "junk.pt", torch::kCPU); }, {"junk.pt", "not a TorchScript model"});
  expect_error([&] { stats.features(torch::zeros({2, 4, 16, 16, 3})); }, {"uint8 clips"});
}

using loong::test::write_test_bpe;

TEST(Eval, ClipBpeEncodesLikeClip) {
  TempDir dir;
  write_test_bpe(dir / "bpe.txt");
  auto bpe = ClipBpe::load(dir / "bpe.txt");
  // Ids: 256 byte symbols ('!' first, so 'a' = 97 - 33 = 64), the same with
  // "</w>" (+256), the 6 merges (512...), then <|startoftext|>, <|endoftext|>.
  EXPECT_EQ(bpe.vocab_size(), 512 + 6 + 2);
  EXPECT_EQ(bpe.sot(), 518);
  EXPECT_EQ(bpe.eot(), 519);
  EXPECT_EQ(bpe.encode("a red shirt"), (std::vector<int64_t>{320, 517, 515}));
  EXPECT_EQ(bpe.encode("  A   RED\tShirt "), (std::vector<int64_t>{320, 517, 515}));  // lower case, whitespace
  // "reds" has no merge for "d s</w>": r e -> re, then re d is not "re d</w>".
  EXPECT_EQ(bpe.encode("reds"), (std::vector<int64_t>{512 + 4, 'd' - 33, 256 + 's' - 33}));
  // Digits are single words; symbol runs are words; contractions split off.
  EXPECT_EQ(bpe.encode("12"), (std::vector<int64_t>{256 + '1' - 33, 256 + '2' - 33}));
  EXPECT_EQ(bpe.encode("a!?"), (std::vector<int64_t>{320, '!' - 33, 256 + '?' - 33}));
  EXPECT_EQ(bpe.encode("it's"), (std::vector<int64_t>{'i' - 33, 256 + 't' - 33, '\'' - 33, 256 + 's' - 33}));
  auto t = bpe.tokenize({"a red shirt", std::string(100, 'a')}, 8);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{2, 8}));
  EXPECT_TRUE(torch::equal(t[0], torch::tensor({518, 320, 517, 515, 519, 0, 0, 0}, torch::kLong)));
  EXPECT_EQ(t[1][7].item<int64_t>(), 519) << "a cut text still ends with <|endoftext|>";
  // gzip input reads the same.
  loong::test::write_bytes(dir / "bpe.txt.gz", "");
  ASSERT_EQ(std::system(("gzip -c " + (dir / "bpe.txt") + " > " + (dir / "bpe.txt.gz")).c_str()), 0);
  EXPECT_EQ(ClipBpe::load(dir / "bpe.txt.gz").encode("a red shirt"), bpe.encode("a red shirt"));
  loong::test::write_bytes(dir / "bad.txt", "#version\nabc\n");
  expect_error([&] { ClipBpe::load(dir / "bad.txt"); }, {"bad.txt:2", "merge"});
  expect_error([&] { ClipBpe::load(dir / "none.txt"); }, {"none.txt", "no such"});
}

TEST(Eval, ClipModelEmbeddingsAndPreprocessing) {
  TempDir dir;
  {
    loong::test::write_tiny_clip(dir / "clip.pt");
    torch::jit::Module half("NoText");
    half.define(R"(
def encode_image(self, x):
    return x
)");
    half.save(dir / "half.pt");
  }
  // A flat colour: after preprocessing each channel is ((c / 255) - mean) / std.
  auto frame = torch::empty({1, 40, 60, 3}, torch::kUInt8);
  frame.select(3, 0).fill_(200);
  frame.select(3, 1).fill_(30);
  frame.select(3, 2).fill_(90);
  auto pre = clip_preprocess(frame);
  EXPECT_EQ(pre.sizes(), (std::vector<int64_t>{1, 3, 224, 224}));
  const double v[3] = {(200 / 255.0 - 0.48145466) / 0.26862954, (30 / 255.0 - 0.4578275) / 0.26130258,
                       (90 / 255.0 - 0.40821073) / 0.27577711};
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(pre[0][c][100][100].item<double>(), v[c], 1e-4);

  ClipModel clip(dir / "clip.pt", torch::kCPU);
  auto img = clip.encode_images(frame);
  auto txt = clip.encode_texts(torch::tensor({{518, 320, 517, 515, 519}}, torch::kLong));
  const double ni = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]), nt = std::sqrt(320.0 * 320 + 517.0 * 517 + 515.0 * 515);
  const double expected = (v[0] * 320 + v[1] * 517 + v[2] * 515) / (ni * nt);
  EXPECT_NEAR(img.matmul(txt[0]).item<double>(), expected, 1e-4) << "unscaled cosine";
  expect_error([&] { ClipModel(dir / "half.pt", torch::kCPU); }, {"half.pt", "encode_text"});
  expect_error([&] { ClipModel(dir / "none.pt", torch::kCPU); }, {"none.pt", "no such file", "CLIP"});
}

TEST(Eval, ProbeTargetsAndTraining) {
  // Targets come from the ground truth of a rendered video.
  loong::data::MovingFashionOptions o;
  o.size = 32;
  o.seconds = 2;
  auto items = loong::data::load_fashion_mnist("train");
  auto s = loong::data::make_video(items, o, 3);
  auto t = probe_targets(s.truth, s.frames.size(0));
  EXPECT_EQ(t.background.size(0), s.frames.size(0));
  const auto& it0 = s.truth["items"][0];
  const int slot = it0["class"].get<int>() * 8 + [&] {
    for (int c = 0; c < 8; ++c)
      if (it0["colour"] == loong::data::kItemColours[static_cast<size_t>(c)].name) return c;
    return -1;
  }();
  EXPECT_EQ(t.presence[0][slot].item<float>(), 1.f);
  EXPECT_NEAR(t.position[0][slot][0].item<double>(), s.truth["per_frame"][0]["items"][0]["x"].get<double>(), 1e-6);
  EXPECT_EQ(t.presence.sum(1)[0].item<float>(), static_cast<float>(s.truth["per_frame"][0]["items"].size()));
  expect_error([&] { probe_targets(s.truth, 1000); }, {"1000 asked"});

  // A short training run learns the background (flat colours) well above chance (1/6).
  // 600 steps and 48 held-out videos: at 300 steps and 16 videos the figure ranged from
  // 0.48 to 0.81 over seeds 0-7 (seed 0 failed on one machine, passed on another); here it
  // was 0.80 to 1.0 over seeds 0-5.
  torch::manual_seed(0);
  ProbeNet net(small_probe());
  ProbeTrainOptions to;
  to.steps = 600;
  to.batch = 16;
  to.crop_steps = 0;  // the first phase alone (the crop phase has a test of its own)
  to.heldout_videos = 48;
  auto scores = train_probe(net, to);
  EXPECT_EQ(scores.frames, to.heldout_videos * 8);
  EXPECT_GT(scores.background_accuracy, 0.5) << scores.background_accuracy;
  TempDir dir;
  save_probe(dir / "p", net);
  auto back = load_probe(dir / "p");
  auto again = score_probe(back, "t10k", to.heldout_videos, to.seed + 1);
  EXPECT_DOUBLE_EQ(again.background_accuracy, scores.background_accuracy);
}

TEST(Eval, ProbeCropPhaseTrainsTheCropClassifierAlone) {
  // The second phase: only the crop classifier changes, it learns to name
  // classes well above chance (1/10), and half its frames go through
  // `degrade_each`, batched (one call a step).
  torch::manual_seed(1);
  ProbeNet net(small_probe());
  std::vector<torch::Tensor> before, crop_before;
  for (const auto& p : net->trunk->parameters()) before.push_back(p.detach().clone());
  for (const auto& p : net->crop_head->parameters()) crop_before.push_back(p.detach().clone());
  ProbeTrainOptions to;
  to.steps = 0;
  to.crop_steps = 400;
  to.crop_batch = 32;
  to.crop_lr = 3e-3;
  to.heldout_videos = 16;
  int64_t calls = 0, degraded = 0;
  to.degrade_each = [&](const torch::Tensor& frames) {
    ++calls;
    degraded += frames.size(0);
    return frames;  // the identity: what is checked here is which frames, not how
  };
  auto s = train_probe(net, to);
  EXPECT_EQ(calls, to.crop_steps);
  EXPECT_GT(degraded, to.crop_steps * to.crop_batch * 3 / 10);
  EXPECT_LT(degraded, to.crop_steps * to.crop_batch * 7 / 10);
  auto trunk = net->trunk->parameters();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(trunk[i], before[i])) << "trunk parameter " << i;
  EXPECT_FALSE(torch::equal(net->crop_head->parameters()[0], crop_before[0]));
  EXPECT_GT(s.class_accuracy, 0.3) << "items are 10 pixels here (0.57 when written)";
  // Per class: each class's recall over its items; weighted by them, the overall accuracy.
  ASSERT_EQ(s.class_recall.size(), 10u);
  ASSERT_EQ(s.class_items.size(), 10u);
  double right = 0;
  int64_t items = 0, classes_seen = 0;
  for (size_t c = 0; c < 10; ++c) {
    if (s.class_items[c] == 0) {
      EXPECT_TRUE(std::isnan(s.class_recall[c])) << c;
      continue;
    }
    EXPECT_GE(s.class_recall[c], 0);
    EXPECT_LE(s.class_recall[c], 1);
    right += s.class_recall[c] * static_cast<double>(s.class_items[c]);
    items += s.class_items[c];
    ++classes_seen;
  }
  EXPECT_GE(classes_seen, 5) << "16 videos show most classes";
  EXPECT_NEAR(right / static_cast<double>(items), s.class_accuracy, 1e-9);
}

TEST(Eval, ProbeCellTargetsReadBackToTheTruth) {
  // Cell maps that say exactly what the training targets say must read back
  // as the frame's items (slot = class * 8 + colour) at their centres: the
  // targets and the read-out agree on cells, axes and slots.
  loong::data::MovingFashionOptions o;
  o.size = 64;
  o.seconds = 4;
  o.two_items = 1;
  auto items = loong::data::load_fashion_mnist("train");
  int checked = 0;
  for (int64_t index = 0; index < 4; ++index) {
    auto s = loong::data::make_video(items, o, index);
    auto t = probe_targets(s.truth, s.frames.size(0));
    auto c = cell_targets(t, 8);
    ProbeOutput out;
    out.centre = torch::where(c.centre == 1, torch::full({}, 8.0), torch::full({}, -8.0));
    out.item_class = torch::one_hot(c.item_class, kProbeClasses).permute({0, 3, 1, 2}).to(torch::kFloat) * 20;
    out.colour = torch::one_hot(c.colour, kProbeColours).permute({0, 3, 1, 2}).to(torch::kFloat) * 20;
    out.offset = c.offset;
    find_peaks(out);
    read_slots(out);
    for (int64_t f = 0; f < t.presence.size(0); ++f) {
      auto truth = torch::nonzero(t.presence[f]).flatten();
      // Skip frames whose two centres share a cell or touch (one read-out peak).
      auto cells = torch::nonzero(c.centre[f] == 1);
      if (cells.size(0) != truth.size(0) || (cells[0] - cells[cells.size(0) - 1]).abs().max().item<int64_t>() < 2) continue;
      auto top = std::get<0>(std::get<1>(out.presence[f].topk(truth.size(0))).sort());
      ASSERT_TRUE(torch::equal(top, truth)) << "video " << index << " frame " << f;
      EXPECT_TRUE(torch::allclose(out.position[f].index_select(0, truth), t.position[f].index_select(0, truth), 1e-5, 1e-5));
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
}

TEST(Eval, ProbeCropWindowsAreCentredOnTheirPoints) {
  // Channel 0 holds each pixel's column, channel 1 its row: a 24-pixel window
  // (0.375 of 64) centred at (0.5, 0.25) of the frame covers columns 20-43 and
  // rows 4-27, one pixel per pixel.
  auto cols = torch::arange(64, torch::kFloat).view({1, 64}).expand({64, 64});
  auto x = torch::stack({cols, cols.t(), torch::zeros({64, 64})}).unsqueeze(0).repeat({2, 1, 1, 1});
  auto centres = torch::tensor({0.5f, 0.25f, 0.25f, 0.75f, 0.75f, 0.5f, 0.1f, 0.1f}).view({2, 2, 2});
  auto w = crop_windows(x, centres, 0.375, 24);
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{4, 3, 24, 24}));
  auto expect_window = [&](int64_t k, float col0, float row0) {
    auto j = torch::arange(24, torch::kFloat);
    EXPECT_TRUE(torch::allclose(w[k][0][5], j + col0, 1e-4, 1e-4)) << "window " << k;
    EXPECT_TRUE(torch::allclose(w[k][1].select(1, 7), j + row0, 1e-4, 1e-4)) << "window " << k;
  };
  expect_window(0, 20, 4);   // frame 0, first centre
  expect_window(1, 4, 36);   // frame 0, second centre (0.25, 0.75)
  expect_window(2, 36, 20);  // frame 1, first centre (0.75, 0.5)
  // Past the frame's edge the window repeats the edge pixel: centre (0.1, 0.1)
  // = pixel 6.4 starts 5.6 pixels before column 0.
  EXPECT_NEAR(w[3][0][0][0].item<float>(), 0.f, 1e-4);
  EXPECT_NEAR(w[3][0][0][10].item<float>(), 10 - 5.6f, 1e-4);
}

TEST(Eval, ProbeCropClassifierOfItsOwnWidth) {
  // A crop classifier wider than the trunk: saved and loaded with its config;
  // a probe saved before the key existed reads as crop_channels = channels;
  // reshaped_probe keeps the first stage's weights and starts a crop
  // classifier of another width or window anew.
  auto c = small_probe();
  c.crop_channels = 16;
  torch::manual_seed(4);
  ProbeNet net(c);
  EXPECT_EQ(net->crop_trunk->parameters()[0].size(0), 16);
  auto x = torch::rand({2, 3, 32, 32});
  auto centres = torch::full({2, 1, 2}, 0.5);
  net->eval();
  auto a = net->classify_crops(x, centres).first;
  TempDir dir;
  save_probe(dir / "p", net);
  auto back = load_probe(dir / "p");
  EXPECT_EQ(back->config.crop_width(), 16);
  back->eval();
  EXPECT_TRUE(torch::equal(a, back->classify_crops(x, centres).first));

  auto old = small_probe().to_json();
  old.erase("crop_channels");
  EXPECT_EQ(ProbeConfig::from_json(old, "old config").crop_width(), small_probe().channels);
  auto bad = small_probe().to_json();
  bad["crop_channels"] = 2;
  expect_error([&] { ProbeConfig::from_json(bad, "p/config.json"); }, {"p/config.json", "crop_channels"});
  // The world a probe renders is part of its config; probes saved before
  // have none (the default world), and a bad one is named.
  EXPECT_FALSE(old.contains("world"));
  auto worldly = small_probe();
  worldly.world = {{"item_size", 0.4375}, {"classes", {0, 1, 3}}, {"two_items", 0.35}, {"items_bounce", true}};
  EXPECT_EQ(ProbeConfig::from_json(worldly.to_json(), "w").world, worldly.world);
  auto bad_world = worldly.to_json();
  bad_world["world"]["classes"] = {0, 11};
  expect_error([&] { ProbeConfig::from_json(bad_world, "p/config.json"); }, {"p/config.json", "world", "11"});

  auto other = c;
  other.crop_channels = 8;
  other.crop_pixels = 32;
  auto re = reshaped_probe(net, other);
  EXPECT_EQ(re->crop_trunk->parameters()[0].size(0), 8);
  EXPECT_EQ(re->crop_head->weight.size(1), 4 * 8 * 8 * 8);
  for (const auto& name : {"trunk.0.weight", "trunk.10.bias", "cells.weight", "embed.weight", "background.bias"})
    EXPECT_TRUE(torch::equal(re->named_parameters()[name], net->named_parameters()[name])) << name;
  auto same = reshaped_probe(net, c);  // the same shapes: every weight kept
  same->eval();
  EXPECT_TRUE(torch::equal(a, same->classify_crops(x, centres).first));
}

TEST(Eval, ProbeFeatureFrechetPerSegment) {
  // Segments are cut as the scores' are: 25 frames at 10 fps, 1 s -> 10, 10, 5.
  torch::manual_seed(0);
  SegmentFeatures a(1.0), b(1.0);
  auto x = torch::randn({25, 3}, torch::kDouble), y = torch::randn({25, 3}, torch::kDouble);
  a.add(x, 10);
  b.add(x, 10);
  b.add(x, 10);  // the same frames twice: same mean and (nearly) the same covariance
  ASSERT_EQ(a.segments(), 3u);
  EXPECT_EQ(a.segment(2).count(), 5);
  auto same = segment_frechet(a, b);
  ASSERT_EQ(same.segments.size(), 3u);
  EXPECT_LT(same.overall, 0.1);
  // Shifting every feature of the second set's last segment by 2 adds 3 * 2^2 there.
  SegmentFeatures c(1.0);
  c.add(torch::cat({x.narrow(0, 0, 20), x.narrow(0, 20, 5) + 2}), 10);
  auto d = segment_frechet(a, c);
  EXPECT_NEAR(d.segments[0], 0, 1e-6);
  EXPECT_NEAR(d.segments[2], 12, 1e-6);
  // A set with fewer segments: only the shared ones; a single-frame segment has no covariance.
  SegmentFeatures short_set(1.0);
  short_set.add(y.narrow(0, 0, 11), 10);
  auto e = segment_frechet(a, short_set);
  ASSERT_EQ(e.segments.size(), 2u);
  EXPECT_TRUE(std::isfinite(e.segments[0]));
  EXPECT_TRUE(std::isnan(e.segments[1]));
}

TEST(Eval, BoundaryJump) {
  // A bar moving one pixel a frame: every change is the same, so a boundary
  // looks like any other frame (1); a bar that jumps 6 pixels at frame 10
  // changes 6 times as many pixels there.
  auto bar_at = [](const std::vector<int64_t>& x) {
    auto f = torch::zeros({static_cast<int64_t>(x.size()), 16, 32, 3}, torch::kUInt8);
    for (size_t t = 0; t < x.size(); ++t) f[static_cast<int64_t>(t)].narrow(1, x[t], 8).fill_(200);
    return f;
  };
  std::vector<int64_t> smooth, jumpy;
  for (int64_t t = 0; t < 20; ++t) smooth.push_back(t), jumpy.push_back(t < 10 ? t : t + 5);
  EXPECT_NEAR(boundary_jump(bar_at(smooth), {10}), 1.0, 1e-9);
  EXPECT_NEAR(boundary_jump(bar_at(jumpy), {10}), 6.0, 1e-9);
  EXPECT_NEAR(boundary_jump(bar_at(jumpy), {5, 15}), 2.0 / (44.0 / 17), 1e-9);  // the jump is among the rest
  EXPECT_TRUE(std::isnan(boundary_jump(bar_at(smooth), {})));
  EXPECT_TRUE(std::isnan(boundary_jump(bar_at(smooth), {40})));  // past the end
  // The same frames' mean change: 2 of 32 columns change by 200 each frame.
  EXPECT_NEAR(mean_frame_change(bar_at(smooth)), 2.0 / 32 * 200 / 255, 1e-9);
  EXPECT_EQ(mean_frame_change(bar_at(std::vector<int64_t>(5, 3))), 0.0);  // a still video
  EXPECT_TRUE(std::isnan(mean_frame_change(bar_at({3}))));
}

namespace {
SceneState state_of(const nlohmann::json& truth, const nlohmann::json& frame) {
  std::map<int64_t, int> slot;
  for (const auto& it : truth["items"])
    for (int c = 0; c < 8; ++c)
      if (it["colour"] == loong::data::kItemColours[static_cast<size_t>(c)].name) slot[it["id"]] = it["class"].get<int>() * 8 + c;
  SceneState s;
  for (const auto& it : frame["items"]) s.items.push_back(slot.at(it["id"]));
  std::sort(s.items.begin(), s.items.end());
  for (int b = 0; b < 6; ++b)
    if (frame["background"] == loong::data::kBackgrounds[static_cast<size_t>(b)].name) s.background = b;
  return s;
}
}  // namespace

TEST(Eval, CaptionsParseBackToTheirGroundTruth) {
  // Every template: videos with one or two items and scene changes, and stills.
  loong::data::MovingFashionOptions o;
  o.size = 16;
  o.seconds = 30;
  o.scene_changes = 0.7;
  o.two_items = 0.5;
  auto items = loong::data::load_fashion_mnist("train");
  int changes = 0;
  for (int64_t i = 0; i < 40; ++i) {
    auto s = i % 4 == 3 ? loong::data::make_image(items, o, i) : loong::data::make_video(items, o, i);
    auto facts = parse_caption(s.caption);
    const auto& pf = s.truth["per_frame"];
    EXPECT_EQ(facts.first(), state_of(s.truth, pf[0])) << s.caption;
    EXPECT_EQ(facts.states.back(), state_of(s.truth, pf[pf.size() - 1])) << s.caption;
    EXPECT_EQ(facts.states.size(), s.truth["events"].size() + 1) << s.caption;
    changes += static_cast<int>(s.truth["events"].size());
  }
  EXPECT_GT(changes, 5) << "the sample covers scene changes";
  // Hand-written prompts in the same words.
  auto f = parse_caption("A Red T-Shirt and a blue shirt on a dark green background");
  EXPECT_EQ(f.first().items, (std::vector<int>{0 * 8 + 0, 6 * 8 + 5}));
  EXPECT_EQ(f.first().background, 5);
  EXPECT_EQ(parse_caption("a picture of a pink ankle boot on navy").first().background, 3);
  EXPECT_EQ(parse_caption("a green bag").first().background, -1);
  expect_error([] { parse_caption("a landscape at dusk"); }, {"caption", "names no"});
}

TEST(Eval, ProbeScoresFromPredictions) {
  auto facts = parse_caption("a red sneaker on a black background");  // slot 7 * 8 + 0, background 0
  const int64_t T = 13;                                                   // 2 s at 6.5 fps: segments of 7 and 6 frames
  auto bg = torch::zeros({T, 6});
  bg.narrow(0, 0, 7).select(1, 0).fill_(5);  // black for the first second
  bg.narrow(0, 7, 6).select(1, 1).fill_(5);  // then white
  auto pres = torch::zeros({T, 80});
  pres.select(1, 56).fill_(4);
  pres[12][56] = 0;
  pres[12][3] = 4;  // the last frame shows another item
  auto pos = torch::zeros({T, 80, 2});
  for (int64_t t = 0; t < T; ++t) pos[t][56][0] = 0.2 + 0.01 * t;
  auto v = score_predictions(bg, pres, pos, 6.5, facts, 1.0);
  ASSERT_EQ(v.segments.size(), 2u);
  EXPECT_EQ(v.segments[0].frames, 7);
  EXPECT_DOUBLE_EQ(v.segments[0].text_match, 1.0);
  EXPECT_DOUBLE_EQ(v.segments[1].text_match, 0.0);  // wrong background
  EXPECT_DOUBLE_EQ(v.segments[0].identity, 1.0);
  EXPECT_NEAR(v.segments[1].identity, 5.0 / 6, 1e-12);
  EXPECT_NEAR(v.overall.identity, 12.0 / 13, 1e-12);
  EXPECT_NEAR(v.segments[0].motion, 0.065, 1e-6);  // 0.01 of the width per frame at 6.5 fps
  EXPECT_NEAR(v.overall.motion, 0.065, 1e-6);      // the item swap is not counted as motion
  EXPECT_NEAR(v.overall.text_match, 7.0 / 13, 1e-12);
  // A narrated change: frames of the second scene match too.
  auto changed = parse_caption("a red sneaker on a black background, then the background turns white");
  EXPECT_NEAR(score_predictions(bg, pres, pos, 6.5, changed, 1.0).overall.text_match, 12.0 / 13, 1e-12);

  // Items seen: the item fades in the last 4 frames (its peak falls below 0.5), which text
  // match and identity, reading the most likely item of every frame, do not see.
  EXPECT_TRUE(std::isnan(v.overall.items_seen)) << "no peak scores given";
  auto peaks = torch::zeros({T, kProbePeaks});
  peaks.narrow(0, 0, 9).select(1, 0).fill_(0.9);
  peaks.narrow(0, 9, 4).select(1, 0).fill_(0.3);
  peaks.select(1, 1).fill_(0.2);
  auto faded = score_predictions(bg, pres, pos, 6.5, facts, 1.0, peaks);
  EXPECT_DOUBLE_EQ(faded.segments[0].items_seen, 1.0);
  EXPECT_NEAR(faded.segments[1].items_seen, 2.0 / 6, 1e-12);
  EXPECT_NEAR(faded.overall.items_seen, 9.0 / 13, 1e-12);
  EXPECT_NEAR(faded.overall.identity, v.overall.identity, 1e-12);
  // Two items named: a frame needs two peaks at or above 0.5.
  auto two = parse_caption("a red sneaker and a blue bag on a black background");
  peaks.select(1, 1).fill_(0.5);
  peaks[3][1] = 0.49;
  EXPECT_NEAR(score_predictions(bg, pres, pos, 6.5, two, 1.0, peaks).overall.items_seen, 8.0 / 13, 1e-12);
  expect_error([&] { score_predictions(bg, pres, pos, 6.5, facts, 1.0, peaks.narrow(0, 0, 5)); }, {"peak scores"});
}
