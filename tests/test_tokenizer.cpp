// Video tokenizer: shapes, strict causality, straight-through gradients, CVQ
// revival of dead codes, save/load, configs, and that it can learn.
#include <torch/torch.h>

#include "loong/io/safetensors.h"
#include "loong/tokenizer/layers.h"
#include "loong/tokenizer/model.h"
#include "fixtures.h"
#include "test_util.h"

using namespace loong::tokenizer;
using loong::test::expect_error;
using loong::test::TempDir;

namespace {

TokenizerConfig micro() { return loong::test::micro_tokenizer(); }

}  // namespace

TEST(Tokenizer, LatentShapes) {
  torch::manual_seed(0);
  torch::NoGradGuard ng;
  VideoTokenizer tok(micro());
  tok->eval();
  for (auto [frames, latent] : std::vector<std::pair<int, int>>{{1, 1}, {5, 2}, {17, 5}, {65, 17}}) {
    auto ids = tok->encode(torch::rand({1, 3, frames, 32, 32}) * 2 - 1);
    EXPECT_EQ(ids.sizes(), (std::vector<int64_t>{1, latent, 4, 4})) << frames << " frames";
    EXPECT_EQ(tok->decode(ids).sizes(), (std::vector<int64_t>{1, 3, frames, 32, 32}));
  }
  // The paper's clip: 65 x 128 x 128 -> 17 x 16 x 16 = 4,352 tokens.
  auto ids = tok->encode(torch::zeros({1, 3, 65, 128, 128}));
  EXPECT_EQ(ids.sizes(), (std::vector<int64_t>{1, 17, 16, 16}));
  EXPECT_EQ(ids.numel(), 4352);
  expect_error([&] { tok->encode(torch::zeros({1, 3, 4, 32, 32})); }, {"1 + 4k frames", "got 4"});
  expect_error([&] { tok->encode(torch::zeros({1, 3, 5, 30, 32})); }, {"multiples of 8"});
  expect_error([&] { tok->decode(torch::full({1, 1, 2, 2}, 64, torch::kLong)); }, {"ids must be in [0, 64)"});
}

TEST(Tokenizer, EncoderIsStrictlyCausal) {
  for (const char* norm : {"none", "group"}) {
    SCOPED_TRACE(std::string("norm ") + norm);
    torch::manual_seed(1);
    torch::NoGradGuard ng;
    auto cfg = micro();
    cfg.norm = norm;
    VideoTokenizer tok(cfg);
    tok->eval();
    auto video = torch::rand({1, 3, 17, 32, 32}) * 2 - 1;
    auto full = tok->encode_latents(video);  // 5 latent frames
    auto full_ids = tok->encode(video);
    for (int k : {0, 1, 2, 3}) {
      const int frames = 1 + 4 * k;
      auto prefix = tok->encode_latents(video.narrow(2, 0, frames));
      ASSERT_EQ(prefix.size(2), k + 1);
      EXPECT_TRUE(torch::allclose(prefix, full.narrow(2, 0, k + 1), 1e-5, 1e-6)) << "prefix of " << frames << " frames";
      EXPECT_TRUE(torch::equal(tok->encode(video.narrow(2, 0, frames)), full_ids.narrow(1, 0, k + 1)));
    }
    // Changing a later frame never changes earlier latents.
    auto changed = video.clone();
    changed.narrow(2, 9, 8).uniform_(-1, 1);
    auto other = tok->encode_latents(changed);
    EXPECT_TRUE(torch::allclose(other.narrow(2, 0, 3), full.narrow(2, 0, 3), 1e-5, 1e-6));
    EXPECT_FALSE(torch::allclose(other.narrow(2, 3, 2), full.narrow(2, 3, 2)));
  }
}

TEST(Tokenizer, SingleFrameConvolutionMatchesConv3d) {
  // A one-frame input takes a 2D fast path; it must agree with the padded
  // conv3d, in values and in the gradient of the newest temporal tap.
  torch::manual_seed(9);
  for (K3 stride : {K3{1, 1, 1}, K3{2, 2, 2}}) {
    CausalConv3d conv(4, 6, K3{3, 3, 3}, stride);
    {
      torch::NoGradGuard ng;
      conv->conv->weight.normal_();  // older taps nonzero too
      conv->conv->bias.normal_();
    }
    auto x = torch::randn({2, 4, 1, 8, 8});
    auto fast = conv(x);
    auto padded = torch::nn::functional::pad(x, torch::nn::functional::PadFuncOptions({1, 1, 1, 1, 2, 0}));
    auto ref = torch::conv3d(padded, conv->conv->weight, conv->conv->bias, {stride[0], stride[1], stride[2]});
    ASSERT_EQ(fast.sizes(), ref.sizes());
    EXPECT_TRUE(torch::allclose(fast, ref, 1e-4, 1e-5));
    auto g_fast = torch::autograd::grad({fast.sum()}, {conv->conv->weight})[0];
    auto g_ref = torch::autograd::grad({ref.sum()}, {conv->conv->weight})[0];
    EXPECT_TRUE(torch::allclose(g_fast, g_ref, 1e-4, 1e-4));
  }
}

TEST(Tokenizer, StraightThroughGradientsReachTheEncoder) {
  torch::manual_seed(2);
  VideoTokenizer tok(micro());
  tok->train();
  auto out = tok->forward(torch::rand({1, 3, 5, 16, 16}) * 2 - 1);
  (out.reconstruction.square().mean() + out.codebook_loss + out.commitment_loss).backward();
  auto first = tok->encoder->ptr(0)->named_parameters()["conv.weight"];
  ASSERT_TRUE(first.grad().defined());
  EXPECT_GT(first.grad().abs().sum().item<double>(), 0) << "the first encoder conv gets gradient through the quantiser";
  EXPECT_GT(tok->quantizer->embedding->weight.grad().abs().sum().item<double>(), 0) << "codebook loss reaches codes";
}

TEST(Tokenizer, CvqRevivesDeadCodes) {
  torch::manual_seed(3);
  const int K = 128, D = 8;
  CvqQuantizer q(K, D, 0.25, 0.99);
  const auto u = torch::ones({1, D}) / std::sqrt(double(D));
  auto features = [&](int n = 512) { return u + 0.3 * torch::randn({n, D}); };  // the data lives around +u
  {
    torch::NoGradGuard ng;  // collapse: 4 codes near the data, 124 dead ones pointing away from it
    q->embedding->weight.narrow(0, 0, 4).copy_(u + 0.3 * torch::randn({4, D}));
    q->embedding->weight.narrow(0, 4, K - 4).copy_(-u + 0.1 * torch::randn({K - 4, D}));
  }
  auto codes_used = [&] {
    q->eval();
    auto n = std::get<0>(at::_unique(q->lookup(features(8192)))).size(0);
    q->train();
    return n;
  };
  const int64_t used_before = codes_used();
  q->train();
  for (int step = 0; step < 50; ++step) q->forward(features());
  const int64_t used_after = codes_used();
  EXPECT_LE(used_before, 12) << "a collapsed codebook uses a handful of codes";
  EXPECT_GE(used_after, 100) << "CVQ pulls dead codes onto the data";
  // Codes in use are left alone: usage p gives an anchor weight exp(-p K 1000),
  // negligible once p is a fair share of the running usage.
  auto before = q->embedding->weight.clone();
  auto usage = q->usage.clone();
  q->forward(features());
  auto moved = (q->embedding->weight - before).norm(2, 1);
  auto in_use = usage > 0.2 * usage.mean();
  ASSERT_GT(in_use.sum().item<int64_t>(), 50);
  EXPECT_LT(moved.index({in_use}).max().item<double>(), 1e-6);
}

TEST(Tokenizer, SaveLoadGivesIdenticalOutputs) {
  TempDir dir;
  torch::manual_seed(4);
  VideoTokenizer a(micro());
  a->train();
  a->forward(torch::rand({1, 3, 5, 16, 16}));  // non-trivial usage buffer
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : a->named_parameters()) tensors.emplace_back(p.key(), p.value());
  for (const auto& b : a->named_buffers()) tensors.emplace_back(b.key(), b.value());
  loong::safetensors::save(dir / "model.safetensors", tensors);
  auto loaded = loong::safetensors::load(dir / "model.safetensors");
  EXPECT_TRUE(loaded.count("encoder.0.conv.weight"));
  EXPECT_TRUE(loaded.count("quantizer.embedding.weight"));
  EXPECT_TRUE(loaded.count("quantizer.usage"));

  torch::manual_seed(99);
  VideoTokenizer b(micro());
  {
    torch::NoGradGuard ng;
    for (auto& p : b->named_parameters()) p.value().copy_(loaded.at(p.key()));
    for (auto& buf : b->named_buffers()) buf.value().copy_(loaded.at(buf.key()));
  }
  a->eval();
  b->eval();
  torch::NoGradGuard ng;
  auto x = torch::rand({1, 3, 9, 16, 16}) * 2 - 1;
  EXPECT_TRUE(torch::equal(a->encode(x), b->encode(x)));
  EXPECT_TRUE(torch::equal(a->decode(a->encode(x)), b->decode(b->encode(x))));
}

TEST(Tokenizer, ConfigsAndPresets) {
  TempDir dir;
  auto paper = TokenizerConfig::preset("paper");
  EXPECT_EQ(paper.codebook_size, 8192);
  EXPECT_EQ(paper.spatial_factor(), 8);
  EXPECT_EQ(paper.temporal_factor(), 4);
  EXPECT_EQ(paper.latent_frames(65), 17);
  auto round = TokenizerConfig::from_json(paper.to_json(), "x");
  EXPECT_EQ(round.to_json(), paper.to_json());
  auto tiny = TokenizerConfig::from_json({{"preset", "tiny"}, {"codebook_size", 512}}, "t.json");
  EXPECT_EQ(tiny.codebook_size, 512);
  EXPECT_EQ(tiny.image_size, 64);
  expect_error([] { TokenizerConfig::preset("huge"); }, {"unknown tokenizer preset 'huge'", "tiny, paper"});
  expect_error([] { TokenizerConfig::from_json({{"codebook_size", 0}}, "c.json"); },
               {"c.json", "key 'codebook_size'", "got 0"});
  expect_error([] { TokenizerConfig::from_json({{"base_channels", "wide"}}, "c.json"); },
               {"c.json", "key 'base_channels'", "expected an integer", "got string"});
  expect_error([] { TokenizerConfig::from_json({{"channel_mult", {1, 2}}, {"temporal_down", {true, true}}}, "c.json"); },
               {"key 'temporal_down'", "one entry per downsample (1)"});
  expect_error([] { TokenizerConfig::from_json({{"image_size", 60}}, "c.json"); }, {"key 'image_size'", "multiple of 8"});
  expect_error([] { TokenizerConfig::from_json({{"depth", 3}}, "c.json"); }, {"c.json", "unknown key 'depth'"});
  EXPECT_EQ(paper.norm, "group");
  EXPECT_EQ(TokenizerConfig::preset("tiny").norm, "none");
  expect_error([] { TokenizerConfig::from_json({{"norm", "batch"}}, "c.json"); },
               {"c.json", "key 'norm'", "\"group\" or \"none\"", "got 'batch'"});
  // A decoder of its own widths and depths: read, built, written back; a config without
  // them writes neither key, so configs saved before them read back unchanged.
  EXPECT_FALSE(TokenizerConfig::preset("tiny").to_json().contains("decoder_channels"));
  auto light = TokenizerConfig::from_json(
      {{"preset", "tiny"}, {"decoder_channels", {8, 8, 16, 32}}, {"decoder_res_blocks", {1, 1, 2, 2}}}, "l.json");
  EXPECT_EQ(light.decoder_width(0), 8);
  EXPECT_EQ(light.decoder_width(3), 32);
  EXPECT_EQ(light.decoder_blocks(0), 1);
  EXPECT_EQ(TokenizerConfig::preset("tiny").decoder_blocks(0), 2);
  EXPECT_EQ(TokenizerConfig::from_json(light.to_json(), "x").to_json(), light.to_json());
  EXPECT_EQ(light.encoder_json(), TokenizerConfig::preset("tiny").encoder_json());
  // Keys that spell the default decoder build the same model and compare equal.
  auto spelled = TokenizerConfig::from_json(
      {{"preset", "tiny"}, {"decoder_channels", {32, 32, 64, 64}}, {"decoder_res_blocks", {2, 2, 2, 2}}}, "s.json");
  EXPECT_EQ(spelled.to_json(), TokenizerConfig::preset("tiny").to_json());
  {
    torch::manual_seed(0);
    VideoTokenizer full(TokenizerConfig::preset("tiny")), lighter(light);
    EXPECT_LT(lighter->parameter_count(), full->parameter_count());
    torch::NoGradGuard ng;
    auto ids = torch::randint(0, light.codebook_size, {1, 2, 2, 2});
    EXPECT_EQ(lighter->decode(ids).sizes(), full->decode(ids).sizes());
    // Only the decoder differs: the encoders' tensors are named and shaped alike.
    auto a = full->encoder->named_parameters(), b = lighter->encoder->named_parameters();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].value().sizes(), b[i].value().sizes()) << a[i].key();
  }
  expect_error([] { TokenizerConfig::from_json({{"decoder_channels", {16, 16, 32}}}, "c.json"); },
               {"c.json", "key 'decoder_channels'", "one entry per level (4", "got 3"});
  expect_error([] { TokenizerConfig::from_json({{"decoder_res_blocks", {1, 0, 2, 2}}}, "c.json"); },
               {"c.json", "key 'decoder_res_blocks'", "[1, 16]", "got 0"});
  expect_error([] { TokenizerConfig::from_json({{"decoder_channels", "thin"}}, "c.json"); },
               {"c.json", "key 'decoder_channels'", "an array of positive integers"});
  loong::test::write_bytes(dir / "bad.json", "{\"preset\": \"tiny\",}");
  expect_error([&] { TokenizerConfig::load(dir / "bad.json"); }, {"bad.json", "invalid JSON"});
}

TEST(Tokenizer, PaperPresetSizeIsNearThePapers) {
  torch::NoGradGuard ng;
  VideoTokenizer paper(TokenizerConfig::preset("paper"));
  const double m = paper->parameter_count() / 1e6;
  EXPECT_NEAR(m, 246, 246 * 0.15) << m << " M parameters; the paper's tokenizer has 246 M";
  VideoTokenizer tiny(TokenizerConfig::preset("tiny"));
  EXPECT_LT(tiny->parameter_count(), 6'000'000);
  std::cout << "paper preset: " << paper->parameter_count() << " parameters; tiny: " << tiny->parameter_count() << "\n";
}

TEST(Tokenizer, OverfitsOneClip) {
  torch::manual_seed(5);
  auto cfg = micro();
  cfg.base_channels = 16;
  VideoTokenizer tok(cfg);
  tok->train();
  auto clip = loong::test::natural_clip(5, 16, 16, 7);
  auto x = frames_to_input(clip);
  torch::optim::Adam opt(tok->parameters(), torch::optim::AdamOptions(3e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    auto out = tok->forward(x);
    auto loss = (out.reconstruction - x).abs().mean() + out.codebook_loss + out.commitment_loss;
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  tok->eval();
  torch::NoGradGuard ng;
  auto recon = output_to_frames(tok->decode(tok->encode(x)));
  const double psnr = loong::test::psnr(recon, clip);
  EXPECT_LT(last, first / 3);
  EXPECT_GT(psnr, 24.0) << "loss " << first << " -> " << last;
}
