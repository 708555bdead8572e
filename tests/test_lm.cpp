// The LLaMA language model: vocabulary layout, presets and their sizes, the
// causal mask, rotary embeddings against their formula, grouped-query
// attention, parameter names, that it can learn, and its training data (the
// KV cache and the decode step: test_decode_step.cpp).
#include <array>
#include <cmath>
#include <filesystem>

#include <torch/torch.h>

#include "loong/ops/attention.h"
#include "loong/lm/batch.h"
#include "loong/lm/config.h"
#include "loong/lm/model.h"
#include "loong/lm/shards.h"
#include "loong/lm/vocab.h"
#include "fixtures.h"
#include "test_util.h"

using namespace loong::lm;
using loong::test::expect_error;

namespace {
LmConfig micro() { return loong::test::micro_lm_full_heads(); }
}  // namespace

TEST(Lm, VocabularyLayout) {
  Vocab paper(32000, 8192);
  EXPECT_EQ(paper.size(), 40202);
  Vocab v(5, 7);
  EXPECT_EQ(v.size(), 22);
  EXPECT_EQ(v.pad(), 12);
  EXPECT_EQ(v.sot(), 13);
  EXPECT_EQ(v.eot(), 14);
  EXPECT_EQ(v.sov(), 15);
  EXPECT_EQ(v.eov(), 16);
  EXPECT_EQ(v.video_id(0), 5);
  EXPECT_EQ(v.code_of(11), 6);
  auto s = v.sequence({1, 4}, {0, 6, 2});
  EXPECT_EQ(s, (std::vector<int32_t>{13, 1, 4, 14, 15, 5, 11, 7, 16}));
  EXPECT_EQ(Vocab::prefix_length(2), 5);  // s[5] is the first video token
  EXPECT_TRUE(v.is_video(s[5]));
  EXPECT_EQ(v.sequence({}, {3}, false), (std::vector<int32_t>{13, 14, 15, 8}));
  EXPECT_EQ(v.describe(3), "text:3");
  EXPECT_EQ(v.describe(8), "video:3");
  EXPECT_EQ(v.describe(15), "<sov>");
  EXPECT_EQ(v.describe(21), "<reserved4>");
  expect_error([&] { v.sequence({5}, {}); }, {"text tokens", "piece id 5", "[0, 5)"});
  expect_error([&] { v.sequence({}, {7}); }, {"code 7", "[0, 7)"});
  expect_error([&] { v.code_of(14); }, {"id 14 (<eot>) is not a video code"});
  expect_error([] { Vocab(0, 5); }, {"vocabulary", "positive"});
}

TEST(Lm, PresetSizesMatchTheirNames) {
  for (auto [name, target] : std::vector<std::pair<std::string, double>>{{"700M", 0.7e9}, {"3B", 3e9}, {"7B", 7e9}}) {
    auto c = LmConfig::preset(name);
    EXPECT_EQ(c.vocab_size(), 40202) << name;
    EXPECT_EQ(c.head_dim(), 128) << name;
    EXPECT_NEAR(c.parameter_count(), target, target * 0.10) << name << ": " << c.parameter_count();
  }
  EXPECT_EQ(LmConfig::preset("7B").ffn_dim, 11008);  // LLaMA-7B's
  EXPECT_EQ(llama_ffn_dim(4096), 11008);
  // The count from the config is the count of the built model.
  for (auto c : {LmConfig::preset("tiny"), micro()}) {
    c.n_kv_heads = c.n_heads / 2;
    Llama m(c);
    EXPECT_EQ(m->parameter_count(), c.parameter_count()) << c.name;
  }
}

TEST(Lm, ConfigErrors) {
  auto round = LmConfig::from_json(LmConfig::preset("3B").to_json(), "x");
  EXPECT_EQ(round.to_json(), LmConfig::preset("3B").to_json());
  auto c = LmConfig::from_json({{"preset", "tiny"}, {"n_layers", 2}}, "m.json");
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.dim, LmConfig::preset("tiny").dim);
  expect_error([] { LmConfig::preset("13B"); }, {"unknown model preset '13B'", "tiny, 700M, 3B, 7B"});
  expect_error([] { LmConfig::from_json({{"dim", 30}, {"n_heads", 4}}, "m.json"); },
               {"m.json", "key 'dim'", "multiple of n_heads"});
  expect_error([] { LmConfig::from_json({{"n_heads", 4}, {"n_kv_heads", 3}}, "m.json"); },
               {"m.json", "key 'n_kv_heads'", "does not divide"});
  expect_error([] { LmConfig::from_json({{"layers", 4}}, "m.json"); }, {"m.json", "unknown key 'layers'"});
  expect_error([] { LmConfig::from_json({{"dim", "wide"}}, "m.json"); }, {"m.json", "key 'dim'"});
  // Rotary positions: 1D configs write no rope keys; 3D ones round-trip with their grid.
  EXPECT_FALSE(LmConfig::preset("tiny").to_json().contains("rope"));
  auto r3 = LmConfig::from_json({{"rope", "3d"}, {"rope_grid", {8, 4}}}, "m.json");
  EXPECT_TRUE(r3.rope_3d());
  EXPECT_EQ(r3.rope_rows, 8);
  EXPECT_EQ(r3.rope_cols, 4);
  EXPECT_EQ(LmConfig::from_json(r3.to_json(), "x").to_json(), r3.to_json());
  expect_error([] { LmConfig::from_json({{"rope", "2d"}}, "m.json"); }, {"m.json", "key 'rope'", "\"1d\" or \"3d\""});
  expect_error([] { LmConfig::from_json({{"rope", "3d"}, {"rope_grid", {8}}}, "m.json"); },
               {"m.json", "key 'rope_grid'", "[rows, cols]"});
  expect_error([] { LmConfig::from_json({{"rope", "3d"}, {"rope_grid", {8, 0}}}, "m.json"); }, {"key 'rope_grid'"});
  expect_error([] { LmConfig::from_json({{"rope_grid", {8, 8}}}, "m.json"); }, {"key 'rope_grid'", "only 3d"});
  expect_error([] { LmConfig::from_json({{"rope", "3d"}, {"dim", 16}, {"n_heads", 4}}, "m.json"); },
               {"key 'rope'", "head width of at least 6"});
  // A grid is needed to build the model (the trainer takes it from the shards).
  expect_error([] { Llama m(LmConfig::from_json({{"rope", "3d"}, {"dim", 32}}, "m.json")); }, {"rope_grid", "shards"});
}

TEST(Lm, ForwardShapesAndParameterNames) {
  torch::manual_seed(0);
  torch::NoGradGuard ng;
  auto c = LmConfig::preset("tiny");
  Llama m(c);
  auto logits = m->forward(torch::randint(0, c.vocab_size(), {2, 11}));
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 11, c.vocab_size()}));
  auto names = m->named_parameters();
  for (const char* n : {"tok_embeddings.weight", "layers.0.attention.wq.weight", "layers.0.attention.wk.weight",
                        "layers.0.attention.wv.weight", "layers.0.attention.wo.weight",
                        "layers.0.feed_forward.w1.weight", "layers.0.feed_forward.w2.weight",
                        "layers.0.feed_forward.w3.weight", "layers.0.attention_norm.weight",
                        "layers.0.ffn_norm.weight", "norm.weight", "output.weight"})
    EXPECT_NE(names.find(n), nullptr) << n;
  EXPECT_EQ(names["layers.0.attention.wq.weight"].sizes(), (std::vector<int64_t>{c.dim, c.dim}));
  EXPECT_EQ(names["output.weight"].sizes(), (std::vector<int64_t>{c.vocab_size(), c.dim}));
  expect_error([&] { m->forward(torch::full({1, 3}, c.vocab_size(), torch::kLong)); }, {"token ids must be in"});
  expect_error([&] { m->forward(torch::zeros({1, c.max_seq_len + 1}, torch::kLong)); }, {"exceed max_seq_len"});
}

TEST(Lm, AttentionIsCausal) {
  torch::manual_seed(1);
  torch::NoGradGuard ng;
  auto c = micro();
  Llama m(c);
  auto tokens = torch::randint(0, c.vocab_size(), {1, 16});
  auto base = m->forward(tokens);
  auto changed = tokens.clone();
  changed[0][9] = (changed[0][9].item<int64_t>() + 1) % c.vocab_size();
  auto other = m->forward(changed);
  EXPECT_TRUE(torch::allclose(other.narrow(1, 0, 9), base.narrow(1, 0, 9), 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(other.narrow(1, 9, 7), base.narrow(1, 9, 7), 1e-3, 1e-4));
}

// The blocked causal attention (long sequences on LibTorch 1.13) against a
// dense masked softmax written out here: outputs and the gradients of q, k
// and v, in double, with a length that is not a multiple of the block and
// non-contiguous inputs (the model passes transposed views).
TEST(Lm, BlockedCausalAttentionMatchesDenseValuesAndGradients) {
  torch::manual_seed(3);
  const int64_t B = 2, H = 3, T = 37, D = 8;
  auto make = [&] {
    return torch::randn({B, T, H, D}, torch::kDouble).transpose(1, 2).requires_grad_(true);
  };
  auto q = make(), k = make(), v = make();
  auto upstream = torch::randn({B, H, T, D}, torch::kDouble);
  auto dense = [&](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
    const int64_t n = q.size(2);
    auto s = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(D));
    s = s.masked_fill(torch::ones({n, n}, torch::kBool).triu(1), -INFINITY);
    return torch::matmul(s.softmax(-1), v);
  };
  auto want = dense(q, k, v);
  auto want_grads = torch::autograd::grad({want}, {q, k, v}, {upstream});
  for (int64_t block : {1, 5, 16, 37, 64}) {
    SCOPED_TRACE("block " + std::to_string(block));
    auto got = loong::blocked_causal_attention(q, k, v, block);
    EXPECT_TRUE(torch::allclose(got, want, 1e-10, 1e-12));
    auto grads = torch::autograd::grad({got}, {q, k, v}, {upstream});
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(torch::allclose(grads[i], want_grads[i], 1e-10, 1e-12)) << "input " << i;
  }
  // The attention the model calls takes the blocked path for long sequences (on LibTorch 1.13;
  // a fused kernel on 2.x) and gives the dense result there too.
  const int64_t T2 = loong::kBlockedAttentionFrom + 9;
  auto q2 = torch::randn({1, 2, T2, D}, torch::kDouble), k2 = torch::randn({1, 2, T2, D}, torch::kDouble),
       v2 = torch::randn({1, 2, T2, D}, torch::kDouble);
  EXPECT_TRUE(torch::allclose(loong::attention(q2, k2, v2, true), dense(q2, k2, v2), 1e-10, 1e-12));
  // Causal: the gradient of the first 10 outputs reaches no key after position 9.
  auto g = torch::autograd::grad({loong::blocked_causal_attention(q, k, v, 4).narrow(2, 0, 10).sum()}, {k});
  EXPECT_EQ(g[0].narrow(2, 10, T - 10).abs().max().item<double>(), 0.0);
  EXPECT_GT(g[0].narrow(2, 0, 10).abs().max().item<double>(), 0.0);
}

TEST(Lm, RotaryEmbeddingMatchesItsFormula) {
  const int hd = 8;
  const double theta = 10000;
  auto x = torch::randn({1, 5, 2, hd});
  auto [cos, sin] = rope_tables(hd, 3, 5, theta);
  auto y = apply_rope(x, cos, sin);
  auto xa = x.accessor<float, 4>();
  auto ya = y.accessor<float, 4>();
  for (int t = 0; t < 5; ++t)
    for (int h = 0; h < 2; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        const double angle = (3 + t) * std::pow(theta, -2.0 * i / hd);
        const double a = xa[0][t][h][2 * i], b = xa[0][t][h][2 * i + 1];
        EXPECT_NEAR(ya[0][t][h][2 * i], a * std::cos(angle) - b * std::sin(angle), 1e-5);
        EXPECT_NEAR(ya[0][t][h][2 * i + 1], a * std::sin(angle) + b * std::cos(angle), 1e-5);
      }
  // A rotation: norms are kept, and position 0 is the identity.
  EXPECT_TRUE(torch::allclose(y.norm(2, -1), x.norm(2, -1), 1e-5, 1e-5));
  auto [c0, s0] = rope_tables(hd, 0, 1, theta);
  auto x0 = x.narrow(1, 0, 1);
  EXPECT_TRUE(torch::allclose(apply_rope(x0, c0, s0), x0));
}

TEST(Lm, ThreeDRotaryPositionsFollowTheLatentGrid) {
  auto c = micro();
  c.rope = "3d";
  c.rope_rows = 2;
  c.rope_cols = 3;
  const Vocab v(c.text_vocab, c.video_vocab);
  // <pad> <sot> text <eot> <sov>, then 8 codes: a 2 x 3 frame and 2 codes of the next.
  std::vector<int64_t> ids = {v.pad(), v.sot(), 4, v.eot(), v.sov()};
  for (int k = 0; k < 8; ++k) ids.push_back(v.video_id(k));
  auto tokens = torch::tensor(ids).view({1, -1});
  const std::vector<std::array<int64_t, 3>> expected = {
      {0, 0, 0}, {1, 1, 1}, {2, 2, 2}, {3, 3, 3}, {4, 4, 4},  // text and specials: their index
      {5, 5, 5}, {5, 5, 6}, {5, 5, 7}, {5, 6, 5}, {5, 6, 6}, {5, 6, 7},  // frame 0: (frame, row, column) + 5
      {6, 5, 5}, {6, 5, 6}};                                             // frame 1
  torch::Tensor video_start;
  auto pos = rope_positions(c, tokens, 0, video_start);
  ASSERT_EQ(pos.sizes(), (std::vector<int64_t>{1, 13, 3}));
  for (int i = 0; i < 13; ++i)
    for (int a = 0; a < 3; ++a) EXPECT_EQ(pos[0][i][a].item<int64_t>(), expected[i][a]) << "token " << i << " axis " << a;
  EXPECT_EQ(video_start.item<int64_t>(), 4);
  // In chunks, the <sov> of an earlier chunk places the later ones.
  torch::Tensor vs;
  auto a = rope_positions(c, tokens.narrow(1, 0, 6), 0, vs);
  auto b = rope_positions(c, tokens.narrow(1, 6, 7), 6, vs);
  EXPECT_TRUE(torch::equal(torch::cat({a, b}, 1), pos));
  // Left padding by 2 shifts every axis by 2, which rotary attention does not see.
  torch::Tensor vp;
  auto padded = rope_positions(c, torch::cat({torch::full({1, 2}, v.pad(), torch::kLong), tokens}, 1), 0, vp);
  EXPECT_TRUE(torch::equal(padded.narrow(1, 2, 13), pos + 2));
  // 1D models: the index on every axis; 3D before any <sov> too.
  torch::Tensor none;
  auto one_d = rope_positions(micro(), tokens, 3, none);
  EXPECT_TRUE(torch::equal(one_d.select(2, 2), torch::arange(3, 16).view({1, 13})));
  auto text_only = rope_positions(c, tokens.narrow(1, 0, 4), 0, none);
  EXPECT_TRUE(torch::equal(text_only.select(2, 1), torch::arange(0, 4).view({1, 4})));
  // Pairs: a third each for rows and columns, the rest for frames; each axis
  // has a pair turning one radian a step.
  auto [axis, freq] = rope_pairs(c, torch::kCPU);  // head width 8: 4 pairs
  EXPECT_TRUE(torch::equal(axis, torch::tensor({0, 0, 1, 2}, torch::kLong)));
  EXPECT_DOUBLE_EQ(freq[0].item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(freq[1].item<double>(), 0.01);  // 10000^(-1/2)
  EXPECT_DOUBLE_EQ(freq[2].item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(freq[3].item<double>(), 1.0);
  // 1D pairs with positions (i, i, i) are exactly LLaMA's tables.
  auto [a1, f1] = rope_pairs(micro(), torch::kCPU);
  auto [cos, sin] = rope_angles(one_d, a1, f1);
  auto [tc, ts] = rope_tables(micro().head_dim(), 3, 13, micro().rope_theta);
  EXPECT_TRUE(torch::allclose(cos[0], tc, 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(sin[0], ts, 1e-6, 1e-6));
}


TEST(Lm, OverfitsOneSequence) {
  torch::manual_seed(3);
  auto c = micro();
  Llama m(c);
  auto tokens = torch::randint(0, c.vocab_size(), {1, 24});
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(3e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    auto logits = m->forward(tokens.narrow(1, 0, 23));
    auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, c.vocab_size()}),
                                                     tokens.narrow(1, 1, 23).reshape({-1}));
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  EXPECT_GT(first, 3.0);  // ~ln(60) at the start
  EXPECT_LT(last, 0.05);
}

TEST(Lm, ShardsRoundTripAndRejectDamage) {
  loong::test::TempDir dir;
  const std::string path = dir / "a.loongshard";
  std::vector<ShardSample> samples(3);
  samples[0] = {SampleKind::Image, {1, 2, 3}, {5, 6, 7, 8}, 1, 2, 2, "a red bag"};
  samples[1] = {SampleKind::Video, {}, std::vector<int32_t>(3 * 2 * 2, 9), 3, 2, 2, "x"};  // empty text
  samples[2] = {SampleKind::Video, {4}, {0, 1, 2, 3, 4, 5}, 1, 2, 3, "une robe bleue \xc3\xa9t\xc3\xa9"};
  {
    ShardWriter w(path, 10, 16);
    for (const auto& s : samples) w.add(s);
    EXPECT_FALSE(std::filesystem::exists(path));  // nothing at the final name before finish()
    w.finish();
  }
  ShardReader r(path);
  ASSERT_EQ(r.size(), 3);
  EXPECT_EQ(r.text_vocab(), 10);
  EXPECT_EQ(r.video_vocab(), 16);
  for (int i = 0; i < 3; ++i) {
    auto v = r.at(i);
    EXPECT_EQ(v.kind, samples[i].kind);
    EXPECT_EQ(std::vector<int32_t>(v.text, v.text + v.text_len), samples[i].text);
    EXPECT_EQ(std::vector<int32_t>(v.video, v.video + v.frames * v.tokens_per_frame()), samples[i].video);
    EXPECT_EQ(v.frames, samples[i].frames);
    EXPECT_EQ(v.width, samples[i].width);
    EXPECT_EQ(v.caption(), samples[i].caption);
  }
  expect_error([&] { r.at(3); }, {"sample 3 out of range"});
  EXPECT_EQ(list_shards(dir.path().string()), std::vector<std::string>{path});

  // Bad samples are refused when written.
  {
    ShardWriter w(dir / "b.loongshard", 10, 16);
    expect_error([&] { w.add({SampleKind::Video, {10}, {0}, 1, 1, 1, ""}); }, {"b.loongshard", "text id 10"});
    expect_error([&] { w.add({SampleKind::Video, {}, {16}, 1, 1, 1, ""}); }, {"video code 16", "[0, 16)"});
    expect_error([&] { w.add({SampleKind::Video, {}, {1, 2}, 1, 1, 1, ""}); }, {"2 codes do not fill a 1x1x1 grid"});
  }  // not finished: no file
  EXPECT_FALSE(std::filesystem::exists(dir / "b.loongshard"));

  // Damage: a flipped byte, a truncated file, another file type.
  const std::string good = loong::test::read_bytes(path);
  auto flipped = good;
  flipped[30] ^= 1;
  loong::test::write_bytes(dir / "flip.loongshard", flipped);
  expect_error([&] { ShardReader x(dir / "flip.loongshard"); }, {"flip.loongshard", "checksum mismatch"});
  loong::test::write_bytes(dir / "cut.loongshard", good.substr(0, good.size() - 9));
  expect_error([&] { ShardReader x(dir / "cut.loongshard"); }, {"cut.loongshard", "truncated"});
  loong::test::write_bytes(dir / "tiny.loongshard", good.substr(0, 20));
  expect_error([&] { ShardReader x(dir / "tiny.loongshard"); }, {"tiny.loongshard", "truncated"});
  loong::test::write_bytes(dir / "png.loongshard", "\x89PNG\r\n\x1a\n" + good.substr(8));
  expect_error([&] { ShardReader x(dir / "png.loongshard"); }, {"wrong magic"});
  expect_error([&] { ShardReader x(dir / "missing.loongshard"); }, {"missing.loongshard", "no such file"});
  loong::test::TempDir empty;
  expect_error([&] { list_shards(empty.path().string()); }, {"no .loongshard files"});
}

namespace {
// A view of a sample held in vectors (what a shard record looks like).
SampleView view(const std::vector<int32_t>& text, const std::vector<int32_t>& video, int frames, int h, int w) {
  SampleView v{};
  v.kind = frames == 1 ? SampleKind::Image : SampleKind::Video;
  v.text = text.data();
  v.text_len = static_cast<int64_t>(text.size());
  v.video = video.data();
  v.frames = frames;
  v.height = h;
  v.width = w;
  v.caption_data = "";
  v.caption_len = 0;
  return v;
}
}  // namespace

TEST(Lm, BatchLayoutWeightsAndRanges) {
  Vocab vocab(5, 4);  // text [0,5), video ids [5,9), <pad> 9, <sot> 10, <eot> 11, <sov> 12, <eov> 13
  // 7 latent frames of 1x1 tokens, codes 0..3 cycling; text of 2 pieces.
  std::vector<int32_t> text = {1, 2}, video = {0, 1, 2, 3, 0, 1, 2};
  std::vector<int32_t> short_text = {4};
  std::vector<int32_t> video2 = {3, 3, 3, 3, 3, 3, 3};
  std::mt19937_64 rng(0);
  BatchOptions o;
  o.latent_frames = 6;  // uses the first 6 of 7
  o.caption_dropout = 0;
  o.lambda = 1.0;
  auto b = make_batch({view(text, video, 7, 1, 1), view(short_text, video2, 7, 1, 1)}, vocab, o, rng);
  // Sequence 0: <sot> 1 2 <eot> <sov> v0..v5 <eov> = 12 ids -> 11 inputs/targets.
  ASSERT_EQ(b.input.sizes(), (std::vector<int64_t>{2, 11}));
  std::vector<int64_t> in0(b.input[0].data_ptr<int64_t>(), b.input[0].data_ptr<int64_t>() + 11);
  std::vector<int64_t> tg0(b.target[0].data_ptr<int64_t>(), b.target[0].data_ptr<int64_t>() + 11);
  EXPECT_EQ(in0, (std::vector<int64_t>{10, 1, 2, 11, 12, 5, 6, 7, 8, 5, 6}));
  EXPECT_EQ(tg0, (std::vector<int64_t>{1, 2, 11, 12, 5, 6, 7, 8, 5, 6, 13}));
  // Only video targets carry weight: latent frames 0-4 weigh 1 + lambda, frame 5 weighs 1.
  std::vector<float> w0(b.weight[0].data_ptr<float>(), b.weight[0].data_ptr<float>() + 11);
  EXPECT_EQ(w0, (std::vector<float>{0, 0, 0, 0, 2, 2, 2, 2, 2, 1, 0}));
  std::vector<int64_t> r0(b.range[0].data_ptr<int64_t>(), b.range[0].data_ptr<int64_t>() + 11);
  EXPECT_EQ(r0, (std::vector<int64_t>{-1, -1, -1, -1, 0, 1, 1, 1, 1, 2, -1}));
  // Sequence 1 is one text piece shorter: padded at the end, no weight there.
  EXPECT_EQ(b.input[1][10].item<int64_t>(), vocab.pad());
  EXPECT_EQ(b.weight[1][10].item<float>(), 0.f);
  EXPECT_EQ(b.target[1][3].item<int64_t>(), vocab.video_id(3));
  EXPECT_EQ(b.video_tokens, 12);
  EXPECT_EQ(b.tokens, b.input.ne(vocab.pad()).sum().item<int64_t>());
  EXPECT_EQ(b.tokens, 21);

  // Eq. 2 arithmetic: uniform logits give CE = ln(V) per token, so the loss is
  // ln(V) * sum(weights) / video tokens = ln(V) * (5*2 + 1) * 2 / 12.
  auto logits = torch::zeros({2, 11, vocab.size()});
  auto parts = video_loss(logits, b);
  const double lnV = std::log(static_cast<double>(vocab.size()));
  EXPECT_NEAR(parts.loss.item<double>(), lnV * 22 / 12, 1e-5);
  for (int r = 0; r < kRanges; ++r) EXPECT_NEAR(parts.range_loss[r], lnV, 1e-5) << range_name(r);
  EXPECT_EQ(parts.range_tokens[0], 2);
  EXPECT_EQ(parts.range_tokens[1], 8);
  EXPECT_EQ(parts.range_tokens[2], 2);
  // With lambda = 0 the loss is the plain mean over video tokens.
  o.lambda = 0;
  auto plain = make_batch({view(text, video, 7, 1, 1)}, vocab, o, rng);
  EXPECT_NEAR(video_loss(torch::zeros({1, 11, vocab.size()}), plain).loss.item<double>(), lnV, 1e-5);

  // Caption dropout empties the text; a sample with too few latent frames is an error.
  o.caption_dropout = 1.0;
  auto dropped = make_batch({view(text, video, 7, 1, 1)}, vocab, o, rng);
  EXPECT_EQ(dropped.input[0][1].item<int64_t>(), vocab.eot());
  o.latent_frames = 8;
  expect_error([&] { make_batch({view(text, video, 7, 1, 1)}, vocab, o, rng); },
               {"7 latent frames", "stage needs 8"});

  // Given latent frames (a story's re-encoded start) carry no loss and no range,
  // and a splice puts another sample's first frames there.
  o.latent_frames = 6;
  o.caption_dropout = 0;
  o.given_latent_frames = 2;
  const std::vector<SampleView> starts = {view(short_text, video2, 7, 1, 1)};
  auto given = make_batch({view(text, video, 7, 1, 1)}, vocab, o, {false}, &starts);
  std::vector<int64_t> gin(given.input[0].data_ptr<int64_t>(), given.input[0].data_ptr<int64_t>() + 11);
  EXPECT_EQ(gin, (std::vector<int64_t>{10, 1, 2, 11, 12, 8, 8, 7, 8, 5, 6})) << "latent 0-1 from the start, 2-5 its own";
  std::vector<float> gw(given.weight[0].data_ptr<float>(), given.weight[0].data_ptr<float>() + 11);
  EXPECT_EQ(gw, (std::vector<float>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0}));  // lambda 0 here
  std::vector<int64_t> gr(given.range[0].data_ptr<int64_t>(), given.range[0].data_ptr<int64_t>() + 11);
  EXPECT_EQ(gr, (std::vector<int64_t>{-1, -1, -1, -1, -1, -1, 1, 1, 1, 2, -1}));
  EXPECT_EQ(given.video_tokens, 4);
  EXPECT_EQ(given.target[0][6].item<int64_t>(), vocab.video_id(2)) << "the first learned target is the sample's own";
  o.given_latent_frames = 6;
  expect_error([&] { make_batch({view(text, video, 7, 1, 1)}, vocab, o, rng); }, {"at least one to learn"});

  EXPECT_EQ(range_of_latent_frame(0), 0);
  EXPECT_EQ(range_of_latent_frame(4), 1);
  EXPECT_EQ(range_of_latent_frame(5), 2);
  EXPECT_EQ(range_of_latent_frame(16), 2);
}

TEST(Lm, CaptionDropoutRate) {
  Vocab vocab(5, 4);
  std::vector<int32_t> text = {1, 2}, video = {0};
  std::mt19937_64 rng(7);
  BatchOptions o;
  o.caption_dropout = 0.1;
  int empty = 0;
  for (int i = 0; i < 2000; ++i)
    empty += make_batch({view(text, video, 1, 1, 1)}, vocab, o, rng).input[0][1].item<int64_t>() == vocab.eot();
  EXPECT_NEAR(empty / 2000.0, 0.1, 0.025);
}

TEST(Lm, ShardSetSpansFilesAndChecksVocabularies) {
  loong::test::TempDir dir;
  auto write = [&](const std::string& name, int text_vocab, std::vector<ShardSample> samples) {
    ShardWriter w(dir / name, text_vocab, 16);
    for (const auto& s : samples) w.add(s);
    w.finish();
  };
  const ShardSample image{SampleKind::Image, {1}, {3}, 1, 1, 1, "still"};
  const ShardSample clip5{SampleKind::Video, {2}, std::vector<int32_t>(5, 4), 5, 1, 1, "clip"};
  const ShardSample clip2{SampleKind::Video, {2}, std::vector<int32_t>(2, 5), 2, 1, 1, "tail"};
  write("part-0.loongshard", 10, {image, clip5});
  write("part-1.loongshard", 10, {clip2, clip5, image});
  ShardSet set(dir.path().string());
  ASSERT_EQ(set.size(), 5);
  EXPECT_EQ(set.at(2).caption(), "tail");  // second file's first sample
  EXPECT_EQ(set.with_frames(1), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(set.with_frames(5), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(set.images(), (std::vector<int64_t>{0, 4}));
  set.check_vocab(10, 16, "m.json");
  expect_error([&] { set.check_vocab(12, 16, "m.json"); }, {"m.json", "text_vocab 12", "10 text pieces"});
  write("part-2.loongshard", 11, {image});
  expect_error([&] { ShardSet bad(dir.path().string()); }, {"part-2.loongshard", "differ from"});
}
