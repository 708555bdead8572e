// The LLaMA language model: vocabulary layout, presets and their sizes, the
// causal mask, rotary embeddings against their formula, the KV cache,
// grouped-query attention, parameter names, and that it can learn.
#include <array>
#include <cmath>
#include <filesystem>
#include <atomic>

#include <torch/torch.h>

#include "loong/ops/attention.h"
#include "loong/ops/decode_ops.h"
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
// The shared micro model (fixtures.h) with full attention heads and 30 codes.
LmConfig micro() {
  auto c = loong::test::micro_lm(30);
  c.n_kv_heads = 4;
  c.max_seq_len = 64;
  return c;
}
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

namespace {
// micro() with 3D positions on a 2 x 3 grid, or as it is.
LmConfig micro_rope(const std::string& rope) {
  auto c = micro();
  if (rope == "3d") c.rope = "3d", c.rope_rows = 2, c.rope_cols = 3;
  return c;
}
}  // namespace

TEST(Lm, KvCacheGivesTheSameLogitsAsOneForward) {
  for (const std::string rope : {"1d", "3d"})
  for (int kv_heads : {4, 2, 1}) {
    SCOPED_TRACE("n_kv_heads " + std::to_string(kv_heads) + ", rope " + rope);
    torch::manual_seed(2);
    torch::NoGradGuard ng;
    auto c = micro_rope(rope);
    c.n_kv_heads = kv_heads;
    Llama m(c);
    auto tokens = torch::randint(0, c.text_vocab + c.video_vocab, {2, 12});
    // Videos starting in different chunks: row 0's <sov> in the prefill, row 1's in the next chunk.
    tokens[0][3] = Vocab(c.text_vocab, c.video_vocab).sov();
    tokens[1][6] = Vocab(c.text_vocab, c.video_vocab).sov();
    auto full = m->forward(tokens);
    KvCache cache(c, 2, 12, torch::kCPU);
    auto prefix = m->forward(tokens.narrow(1, 0, 5), &cache, 0);  // prefill
    EXPECT_TRUE(torch::allclose(prefix, full.narrow(1, 0, 5), 1e-4, 1e-5));
    auto chunk = m->forward(tokens.narrow(1, 5, 3), &cache, 5);  // several at once after a prefix
    EXPECT_TRUE(torch::allclose(chunk, full.narrow(1, 5, 3), 1e-4, 1e-5));
    for (int t = 8; t < 12; ++t) {  // one at a time
      auto step = m->forward(tokens.narrow(1, t, 1), &cache, t);
      EXPECT_TRUE(torch::allclose(step, full.narrow(1, t, 1), 1e-4, 1e-5)) << "position " << t;
    }
    EXPECT_EQ(cache.length, 12);
    expect_error([&] { m->forward(tokens.narrow(1, 0, 1), &cache, 12); }, {"the cache holds at most 12"});
    expect_error([&] { m->forward(tokens.narrow(1, 0, 1), &cache, 3); }, {"cache holds 12 positions", "start at 3"});
  }
}

TEST(Lm, DecodeAttentionMatchesASoftmaxOverTheCache) {
  // One query position per row against the first S positions of a cache,
  // with shared key/value heads and padding keys, against softmax(q k^T) v
  // written out in double. S = 1 (the query alone), lengths that are not a
  // multiple of a vector, and one long enough to split rows over threads.
  torch::manual_seed(5);
  const int64_t B = 2, H = 4, C = 5000;
  for (int64_t Hkv : {4, 2, 1})
    for (int64_t D : {32, 64, 5})
      for (int64_t S : {1, 9, 333, 4999}) {
        SCOPED_TRACE("Hkv " + std::to_string(Hkv) + ", D " + std::to_string(D) + ", S " + std::to_string(S));
        auto q = torch::randn({B, D, H}).transpose(1, 2);  // not contiguous
        auto k = torch::randn({B, Hkv, C, D}) * 2, v = torch::randn({B, Hkv, C, D});
        auto valid = torch::rand({B, C}) > 0.3;
        valid[0].fill_(true);
        valid[1][S - 1] = false;  // the query's own key is read all the same
        const double scale = 1 / std::sqrt(double(D));
        auto got = loong::decode_attention(q, k, v, S, valid, scale);
        ASSERT_EQ(got.sizes(), (std::vector<int64_t>{B, H, D}));

        auto kd = k.narrow(2, 0, S).to(torch::kDouble).repeat_interleave(H / Hkv, 1);  // [B, H, S, D]
        auto vd = v.narrow(2, 0, S).to(torch::kDouble).repeat_interleave(H / Hkv, 1);
        auto s =
            torch::matmul(q.to(torch::kDouble).unsqueeze(2), kd.transpose(2, 3)) * scale;  // [B, H, 1, S]
        auto seen = valid.narrow(1, 0, S).clone();
        seen.select(1, S - 1).fill_(true);
        s = s.masked_fill(seen.logical_not().view({B, 1, 1, S}), -INFINITY);
        auto want = torch::matmul(s.softmax(-1), vd).squeeze(2);
        EXPECT_LT((got.to(torch::kDouble) - want).abs().max().item<double>(), 1e-5);
        if (S > 1) {  // the mask counts: a padding key changed changes nothing
          auto hidden = torch::nonzero(seen[1].logical_not());
          if (hidden.size(0) > 0) {
            auto v2 = v.clone();
            v2[1].select(1, hidden[0].item<int64_t>()).fill_(1e3);
            EXPECT_TRUE(torch::allclose(loong::decode_attention(q, k, v2, S, valid, scale), got));
          }
        }
      }
  EXPECT_FALSE(loong::decode_attention_supported(torch::zeros({1, 1, 4, 2}, torch::kDouble),
                                                 torch::zeros({1, 1, 4, 2}), {}));
  EXPECT_FALSE(loong::decode_attention_supported(torch::zeros({1, 1, 2, 4}).transpose(2, 3),
                                                 torch::zeros({1, 1, 4, 2}), {}));
  EXPECT_TRUE(loong::decode_attention_supported(torch::zeros({1, 1, 4, 2}), torch::zeros({1, 1, 4, 2}), {}));
  auto k = torch::zeros({1, 1, 4, 2});
  EXPECT_THROW(loong::decode_attention(torch::zeros({1, 3, 2}), torch::zeros({1, 2, 4, 2}),
                                       torch::zeros({1, 2, 4, 2}), 2, {}, 1),
               c10::Error);
  EXPECT_THROW(loong::decode_attention(torch::zeros({1, 1, 2}), k, k, 5, {}, 1), c10::Error);
}

TEST(Lm, SmallMatmulMatchesAddmm) {
  // Widths inside one block of columns, across several and a partial last
  // one, and products large enough to be split over threads.
  torch::manual_seed(6);
  for (int64_t M : {1, 2, 3})
    for (int64_t K : {5, 128})
      for (int64_t N : {7, 256, 1000}) {
        SCOPED_TRACE(std::to_string(M) + " x " + std::to_string(K) + " x " + std::to_string(N));
        auto x = torch::randn({M, K}), w = torch::randn({K, N}), r = torch::randn({M, N});
        EXPECT_TRUE(torch::allclose(loong::small_matmul(x, w), torch::mm(x, w), 1e-5, 1e-5));
        EXPECT_TRUE(torch::allclose(loong::small_matmul(x, w, r), torch::addmm(r, x, w), 1e-5, 1e-5));
      }
  EXPECT_FALSE(loong::small_matmul_supported(torch::zeros({2, 3}).t()));
  EXPECT_FALSE(loong::small_matmul_supported(torch::zeros({3, 4}, torch::kDouble)));
  auto x = torch::randn({3, 2}).t(), w = torch::randn({3, 5});  // x not contiguous
  EXPECT_TRUE(torch::allclose(loong::small_matmul(x, w), torch::mm(x, w), 1e-5, 1e-5));
  EXPECT_THROW(loong::small_matmul(x.to(torch::kDouble), w), c10::Error);
  EXPECT_THROW(loong::small_matmul(torch::zeros({2, 3}), torch::zeros({4, 5})), c10::Error);
  EXPECT_THROW(loong::small_matmul(torch::zeros({2, 3}), torch::zeros({3, 5}), torch::zeros({2, 4})), c10::Error);
}

TEST(Lm, RowsMatmulMatchesLinear) {
  // Rows of x in blocks of 4, 2 and 1 (M up to 9: a guided batch scoring 4
  // positions is 8), rows of w across blocks and threads.
  torch::manual_seed(7);
  for (int64_t M : {1, 2, 3, 4, 5, 8, 9})
    for (int64_t K : {5, 128})
      for (int64_t N : {7, 16, 1000}) {
        SCOPED_TRACE(std::to_string(M) + " x " + std::to_string(K) + " x " + std::to_string(N));
        auto x = torch::randn({M, K}), w = torch::randn({N, K}), r = torch::randn({M, N});
        // Sums of K products in another order (and OpenBLAS's order depends
        // on the CPU): about K * 2^-24 * |x||w| apart where they cancel.
        const double atol = 1e-6 * static_cast<double>(K);
        EXPECT_TRUE(torch::allclose(loong::rows_matmul(x, w), torch::mm(x, w.t()), 1e-5, atol));
        EXPECT_TRUE(torch::allclose(loong::rows_matmul(x, w, r), torch::addmm(r, x, w.t()), 1e-5, atol))
            << (loong::rows_matmul(x, w, r) - torch::addmm(r, x, w.t())).abs().max().item<float>();
        // The same on bf16 and int8 copies: the products of their widened values.
        auto b = loong::quantize_rows(w, "bf16");
        EXPECT_EQ(b.w.scalar_type(), torch::kBFloat16);
        EXPECT_TRUE(torch::allclose(loong::rows_matmul(x, b.w, r), torch::addmm(r, x, b.w.to(torch::kFloat).t()), 1e-5, atol));
        auto q = loong::quantize_rows(w, "int8");
        EXPECT_EQ(q.w.scalar_type(), torch::kChar);
        const auto deq = q.w.to(torch::kFloat) * q.scale.unsqueeze(1);
        EXPECT_TRUE(torch::allclose(loong::rows_matmul(x, q.w, r, q.scale), torch::addmm(r, x, deq.t()), 1e-5, atol));
        EXPECT_TRUE(torch::allclose(loong::rows_matmul(x, q.w, {}, q.scale), torch::mm(x, deq.t()), 1e-5, atol));
      }
  auto x = torch::randn({3, 2}).t(), w = torch::randn({5, 3});  // x not contiguous
  EXPECT_TRUE(torch::allclose(loong::rows_matmul(x, w), torch::mm(x, w.t()), 1e-5, 1e-5));
  EXPECT_THROW(loong::rows_matmul(torch::zeros({2, 3}), torch::zeros({3, 5})), c10::Error);
  EXPECT_THROW(loong::rows_matmul(torch::zeros({2, 3}), torch::zeros({5, 3}), torch::zeros({2, 4})), c10::Error);
  EXPECT_THROW(loong::rows_matmul(torch::zeros({2, 3}), torch::zeros({5, 3}, torch::kChar)), c10::Error);  // no scale
  EXPECT_THROW(loong::quantize_rows(torch::zeros({5, 3}), "int4"), c10::Error);
  EXPECT_THROW(loong::rows_matmul(torch::zeros({2, 3}), torch::zeros({5, 3}, torch::kDouble)), c10::Error);
}

TEST(Lm, PackedMatmulMatchesMm) {
  // Rows of x in groups of 4, 3, 2 and 1; columns in blocks of 16 with a
  // partial last block (N = 7, 1000) and whole ones (16).
  torch::manual_seed(8);
  for (int64_t M : {1, 2, 3, 4, 5, 8, 9})
    for (int64_t K : {5, 128})
      for (int64_t N : {7, 16, 1000}) {
        SCOPED_TRACE(std::to_string(M) + " x " + std::to_string(K) + " x " + std::to_string(N));
        auto x = torch::randn({M, K}), w = torch::randn({K, N}), r = torch::randn({M, N});
        const auto packed = loong::pack_columns(w.t().contiguous().t());  // a strided w packs the same
        ASSERT_EQ(packed.sizes(), (std::vector<int64_t>{(N + 15) / 16, K, 16}));
        auto y = torch::full({M, N}, 7.0f), z = torch::full({M, N}, 7.0f);
        loong::packed_matmul_into(x.data_ptr<float>(), packed.data_ptr<float>(), nullptr, M, K, N, y.data_ptr<float>());
        loong::packed_matmul_into(x.data_ptr<float>(), packed.data_ptr<float>(), r.data_ptr<float>(), M, K, N,
                                  z.data_ptr<float>());
        const double atol = 1e-6 * static_cast<double>(K);
        EXPECT_TRUE(torch::allclose(y, torch::mm(x, w), 1e-5, atol)) << (y - torch::mm(x, w)).abs().max().item<float>();
        EXPECT_TRUE(torch::allclose(z, torch::addmm(r, x, w), 1e-5, atol));
      }
  EXPECT_THROW(loong::pack_columns(torch::zeros({3, 5}, torch::kDouble)), c10::Error);
}

TEST(Lm, DecodeLoopsUseTheThreads) {
  // at::parallel_for splits work only in files built with OpenMP; without it
  // every decoding loop ran on one thread whatever --threads said.
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  EXPECT_EQ(loong::decode_loop_threads(), 2);
  at::set_num_threads(1);
  EXPECT_EQ(loong::decode_loop_threads(), 1);
  at::set_num_threads(before);
}

TEST(Lm, DecodeStepMatchesTheGeneralForward) {
  // hand false: LibTorch's operations, as on a GPU. shared: the model's own
  // weights (large models), the norms applied instead of folded.
  for (bool shared : {false, true})
  for (bool hand : {true, false})
  for (const std::string rope : {"1d", "3d"})
  for (int kv_heads : {4, 2, 1}) {
    SCOPED_TRACE("n_kv_heads " + std::to_string(kv_heads) + ", rope " + rope + (hand ? "" : ", LibTorch operations") +
                 (shared ? ", shared weights" : ""));
    torch::manual_seed(3);
    c10::InferenceMode guard;
    auto c = micro_rope(rope);
    c.n_kv_heads = kv_heads;
    Llama m(c);
    {  // norm weights away from 1, so folding them into the products is tested
      torch::NoGradGuard ng;
      for (auto& p : m->named_parameters())
        if (p.key().find("norm") != std::string::npos) p.value().uniform_(0.5, 1.5);
    }
    // Row 1 is left-padded by 3 positions, which the mask hides. Both prompts
    // end in <sov> and a video code, as a sampler's do.
    auto prompt = torch::randint(0, c.vocab_size(), {2, 7});
    prompt.select(1, 5).fill_(Vocab(c.text_vocab, c.video_vocab).sov());
    prompt.select(1, 6).fill_(c.text_vocab + 1);
    KvCache ref(c, 2, 20, torch::kCPU), fast(c, 2, 20, torch::kCPU);
    ref.valid = torch::ones({2, 20}, torch::kBool);
    ref.valid[1].narrow(0, 0, 3).fill_(false);
    fast.valid = ref.valid.clone();
    m->hidden(prompt, &ref, 0);
    m->hidden(prompt, &fast, 0);
    const DecodeStep step(m, hand, shared);
    for (int64_t t = 7; t < 20; ++t) {
      auto ids = torch::randint(0, c.vocab_size(), {2});
      auto a = m->hidden(ids.view({2, 1}), &ref, t).select(1, 0);
      auto b = step(ids, fast);
      ASSERT_EQ(b.sizes(), a.sizes());
      EXPECT_LT((a - b).abs().max().item<double>(), 1e-5) << "position " << t;
    }
    EXPECT_EQ(fast.length, 20);
    for (int l = 0; l < c.n_layers; ++l) {
      EXPECT_LT((ref.k[l] - fast.k[l]).abs().max().item<double>(), 1e-5) << "layer " << l;
      EXPECT_LT((ref.v[l] - fast.v[l]).abs().max().item<double>(), 1e-5) << "layer " << l;
    }
    // K positions in one call (speculative decoding's drafts): the general
    // forward over the same K tokens, padding and causal order within the K.
    {
      KvCache ref3(c, 2, 13, torch::kCPU), fast3(c, 2, 13, torch::kCPU);
      ref3.valid = ref.valid.narrow(1, 0, 13).clone();
      fast3.valid = ref3.valid.clone();
      m->hidden(prompt, &ref3, 0);
      m->hidden(prompt, &fast3, 0);
      for (int64_t t = 7; t < 13; t += 3) {
        auto ids = torch::randint(0, c.vocab_size(), {2, 3});
        auto a = m->hidden(ids, &ref3, t);
        auto b = step.positions(ids, fast3);
        ASSERT_EQ(b.sizes(), a.sizes());
        EXPECT_LT((a - b).abs().max().item<double>(), 1e-5) << "positions " << t << "..";
      }
      EXPECT_EQ(fast3.length, 13);
      for (int l = 0; l < c.n_layers; ++l) EXPECT_LT((ref3.k[l] - fast3.k[l]).abs().max().item<double>(), 1e-5);
    }
    // The padding mask counts: without it row 1 reads the padding keys.
    KvCache unmasked(c, 2, 20, torch::kCPU);
    m->hidden(prompt, &unmasked, 0);
    auto ids = torch::randint(0, c.vocab_size(), {2});
    KvCache masked(c, 2, 20, torch::kCPU);
    masked.valid = ref.valid.clone();
    m->hidden(prompt, &masked, 0);
    EXPECT_GT((step(ids, unmasked)[1] - step(ids, masked)[1]).abs().max().item<double>(), 1e-4);

    expect_error([&] { step(ids, fast); }, {"the cache holds at most 20"});
    expect_error([&] { step(ids.view({2, 1}), masked); }, {"expected token ids [B]"});
    KvCache other(c, 3, 20, torch::kCPU);
    expect_error([&] { step(ids, other); }, {"another model or batch"});
    if (hand && !shared) {  // the loops index raw memory: a cache of other heads, or a short mask, is refused
      auto c2 = c;
      c2.n_kv_heads = kv_heads == 1 ? 2 : 1;
      KvCache heads(c2, 2, 20, torch::kCPU);
      expect_error([&] { step(ids, heads); }, {"decode step", "caches [2, " + std::to_string(kv_heads) + ", 20"});
      KvCache short_mask(c, 2, 20, torch::kCPU);
      m->hidden(prompt, &short_mask, 0);
      short_mask.valid = torch::ones({2, 7}, torch::kBool);
      expect_error([&] { step(ids, short_mask); }, {"padding mask covering every position"});
    }
  }
}

// The fused step on two threads (a team sharing out each product's columns,
// the rows and attention's tasks): the same outputs and caches, bit for bit,
// as the step on one thread, padded rows, K positions, 3D positions and
// pieces that split an item included; and the team does have two threads,
// whose barrier holds.
TEST(Lm, DecodeStepOnTwoThreadsGivesTheSameResults) {
  struct Threads {  // put back however the test ends
    int before = at::get_num_threads();
    ~Threads() { at::set_num_threads(before); }
  } restore;
  at::set_num_threads(2);
  {
    std::atomic<int> calls{0}, workers{0}, wrong{0};
    std::array<std::atomic<int>, 2> slot{};
    loong::run_team(2, [&](int w, int W, const std::function<void()>& sync) {
      ++calls;
      workers = W;
      for (int round = 1; round <= 200; ++round) {
        slot[static_cast<size_t>(w)] = round;
        sync();  // every worker has written this round before any reads it
        for (int o = 0; o < W; ++o)
          if (slot[static_cast<size_t>(o)] != round) ++wrong;
        sync();  // and read it before any writes the next
      }
    });
    EXPECT_EQ(workers.load(), loong::decode_loop_threads());  // 2 where OpenMP is built in
    EXPECT_EQ(calls.load(), workers.load());
    EXPECT_EQ(wrong.load(), 0);
    calls = 0;
    loong::run_team(1, [&](int w, int W, const std::function<void()>& sync) {
      EXPECT_EQ(w, 0);
      EXPECT_EQ(W, 1);
      sync();
      ++calls;
    });
    EXPECT_EQ(calls.load(), 1);
  }
  // B = 3 rows, 2 key/value heads: pieces of unequal size, item 1's
  // attention tasks split between the threads. B = 1, 1 head: fewer rows
  // and tasks than threads (one of them idles at every barrier).
  for (const auto& [B, kv_heads] : std::vector<std::pair<int64_t, int>>{{3, 2}, {1, 1}})
  for (const std::string rope : {"1d", "3d"}) {
    SCOPED_TRACE("rope " + rope + ", batch " + std::to_string(B));
    torch::manual_seed(5);
    c10::InferenceMode guard;
    auto c = micro_rope(rope);
    c.n_kv_heads = kv_heads;
    Llama m(c);
    auto prompt = torch::randint(0, c.vocab_size(), {B, 7});
    prompt.select(1, 5).fill_(Vocab(c.text_vocab, c.video_vocab).sov());
    prompt.select(1, 6).fill_(c.text_vocab + 1);
    KvCache one(c, B, 20, torch::kCPU), split(c, B, 20, torch::kCPU);
    one.valid = torch::ones({B, 20}, torch::kBool);
    if (B == 3) {
      one.valid[1].narrow(0, 0, 3).fill_(false);
      one.valid[2].narrow(0, 0, 1).fill_(false);
    }
    split.valid = one.valid.clone();
    m->hidden(prompt, &one, 0);
    m->hidden(prompt, &split, 0);
    DecodeStep on_one(m), on_two(m);
    on_one.set_threaded(false);
    for (int64_t t = 7; t < 20;) {
      const int64_t K = t < 12 ? 1 : 3;  // one position a call, then speculation's K
      auto ids = torch::randint(c.text_vocab, c.vocab_size(), {B, std::min<int64_t>(K, 20 - t)});
      auto a = on_one.positions(ids, one);
      auto b = on_two.positions(ids, split);
      ASSERT_TRUE(torch::equal(a, b)) << "position " << t;
      t += ids.size(1);
    }
    EXPECT_EQ(split.length, 20);
    for (int l = 0; l < c.n_layers; ++l) {
      EXPECT_TRUE(torch::equal(one.k[l], split.k[l])) << "layer " << l;
      EXPECT_TRUE(torch::equal(one.v[l], split.v[l])) << "layer " << l;
    }
  }
}

// bf16 and int8 weights for the CPU decode step: the step on them gives the
// general forward pass of a model whose weights are their widened values,
// and the products read the narrow copies (the model's own stay float32).
TEST(Lm, DecodeStepOnFewerBytesMatchesTheWidenedModel) {
  for (const std::string type : {"bf16", "int8"})
  for (bool hand : {true, false}) {
    SCOPED_TRACE(type + (hand ? "" : ", LibTorch operations"));
    c10::InferenceMode guard;
    auto c = micro_rope("1d");
    c.n_kv_heads = 2;
    torch::manual_seed(4);
    Llama m(c);
    torch::manual_seed(4);
    Llama widened(c);
    for (auto& p : widened->named_parameters()) {
      if (p.key().find("layers.") != 0 || p.key().find("norm") != std::string::npos) continue;
      auto q = loong::quantize_rows(p.value(), type);
      auto w = q.w.to(torch::kFloat);
      if (q.scale.defined()) {
        EXPECT_LE((w * q.scale.unsqueeze(1) - p.value()).abs().max().item<float>(),
                  0.5f * q.scale.max().item<float>() * 1.0001f) << p.key() << ": half a step at most";
        w = w * q.scale.unsqueeze(1);
      }
      p.value().copy_(w);
    }
    auto prompt = torch::randint(0, c.vocab_size(), {2, 7});
    KvCache ref(c, 2, 16, torch::kCPU), fast(c, 2, 16, torch::kCPU);
    widened->hidden(prompt, &ref, 0);
    m->hidden(prompt, &fast, 0);  // the prefill on the model's own weights, as the sampler does
    // ... so the caches start apart by the rounding; make them equal to compare the steps alone.
    for (int l = 0; l < c.n_layers; ++l) fast.k[l].copy_(ref.k[l]), fast.v[l].copy_(ref.v[l]);
    const DecodeStep step(m, hand, true, type), own(m, hand, true);
    KvCache plain(c, 2, 16, torch::kCPU);  // the f32 step from the same cache
    for (int l = 0; l < c.n_layers; ++l) plain.k[l].copy_(ref.k[l]), plain.v[l].copy_(ref.v[l]);
    plain.length = fast.length;
    double off_f32 = 0;
    for (int64_t t = 7; t < 16; ++t) {
      auto ids = torch::randint(0, c.vocab_size(), {2});
      auto a = widened->hidden(ids.view({2, 1}), &ref, t).select(1, 0);
      auto b = step(ids, fast);
      EXPECT_LT((a - b).abs().max().item<double>(), 1e-4) << "position " << t;
      off_f32 = std::max(off_f32, (own(ids, plain) - b).abs().max().item<double>());
    }
    EXPECT_GT(off_f32, 1e-4) << "the narrow weights are not the model's own";
  }
  EXPECT_THROW(DecodeStep(Llama(micro_rope("1d")), true, true, "int4"), c10::Error);
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
