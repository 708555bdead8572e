// The decoding path of the language model on the CPU: the KV cache against
// one forward pass, decode attention, the hand-written products, and the
// fused decode step (one thread and a team of threads, fewer-byte weights)
// against the general forward pass.
#include <array>
#include <atomic>
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "loong/ops/decode_kernels.h"
#include "loong/ops/decode_ops.h"
#include "loong/lm/config.h"
#include "loong/lm/model.h"
#include "loong/lm/vocab.h"
#include "fixtures.h"
#include "test_util.h"

using namespace loong::lm;
using loong::test::expect_error;

namespace {
LmConfig micro() { return loong::test::micro_lm_full_heads(); }
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
        loong::packed_matmul_into(x.data_ptr<float>(), packed, nullptr, M, K, N, y.data_ptr<float>());
        loong::packed_matmul_into(x.data_ptr<float>(), packed, r.data_ptr<float>(), M, K, N,
                                  z.data_ptr<float>());
        const double atol = 1e-6 * static_cast<double>(K);
        EXPECT_TRUE(torch::allclose(y, torch::mm(x, w), 1e-5, atol)) << (y - torch::mm(x, w)).abs().max().item<float>();
        EXPECT_TRUE(torch::allclose(z, torch::addmm(r, x, w), 1e-5, atol));
        // Weights that are float16 values (a bundle's) pack in float16 where
        // the CPU converts it, and give the float32 packing's sums bit for bit.
        const auto w16 = w.to(torch::kHalf).to(torch::kFloat);
        const auto p32 = loong::pack_columns(w16), p16 = loong::pack_columns(w16, true);
        EXPECT_EQ(p16.scalar_type(), loong::detail::packed_f16_supported() ? torch::kHalf : torch::kFloat);
        EXPECT_EQ(loong::pack_columns(w, true).scalar_type(), torch::kFloat);  // not float16 values: as they are
        auto y32 = torch::full({M, N}, 7.0f), y16 = torch::full({M, N}, 7.0f);
        loong::packed_matmul_into(x.data_ptr<float>(), p32, r.data_ptr<float>(), M, K, N, y32.data_ptr<float>());
        loong::packed_matmul_into(x.data_ptr<float>(), p16, r.data_ptr<float>(), M, K, N, y16.data_ptr<float>());
        EXPECT_TRUE(torch::equal(y16, y32));
        EXPECT_TRUE(torch::allclose(y16, torch::addmm(r, x, w16), 1e-5, atol));
      }
  EXPECT_THROW(loong::pack_columns(torch::zeros({3, 5}, torch::kDouble)), c10::Error);
  auto inf = torch::ones({4, 4});
  inf[1][2] = std::numeric_limits<float>::infinity();  // not packed in float16, though it converts to it
  EXPECT_EQ(loong::pack_columns(inf, true).scalar_type(), torch::kFloat);
  EXPECT_THROW(loong::packed_matmul_into(nullptr, loong::pack_columns(torch::ones({4, 4})), nullptr, 1, 4, 40, nullptr),
               c10::Error);  // a packed weight of another shape
  EXPECT_THROW(loong::packed_matmul_into(nullptr, loong::pack_columns(torch::ones({8, 16})), nullptr, 1, 4, 32, nullptr),
               c10::Error);  // as many weights, laid out for another K and N
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
  // weights (large models), the norms applied instead of folded. half:
  // weights that are float16 values, as a bundle's, which the step's own
  // loops read in float16.
  for (bool half : {false, true})
  for (bool shared : {false, true})
  for (bool hand : {true, false})
  for (const std::string rope : {"1d", "3d"})
  for (int kv_heads : {4, 2, 1}) {
    if (half && (shared || !hand)) continue;
    SCOPED_TRACE("n_kv_heads " + std::to_string(kv_heads) + ", rope " + rope + (hand ? "" : ", LibTorch operations") +
                 (shared ? ", shared weights" : "") + (half ? ", float16 values" : ""));
    torch::manual_seed(3);
    c10::InferenceMode guard;
    auto c = micro_rope(rope);
    c.n_kv_heads = kv_heads;
    Llama m(c);
    {  // norm weights away from 1, so folding them into the products is tested
      torch::NoGradGuard ng;
      for (auto& p : m->named_parameters())
        if (p.key().find("norm") != std::string::npos) p.value().uniform_(0.5, 1.5);
      if (half)
        for (auto& p : m->parameters()) p.copy_(p.to(torch::kHalf));
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
  // and tasks than threads (one of them idles at every barrier). half: the
  // weights are float16 values (a bundle's), which the team reads in float16
  // and the one thread in float32 (set_f16_weights): still the same bits.
  for (bool half : {false, true})
  for (const auto& [B, kv_heads] : std::vector<std::pair<int64_t, int>>{{3, 2}, {1, 1}})
  for (const std::string rope : {"1d", "3d"}) {
    SCOPED_TRACE("rope " + rope + ", batch " + std::to_string(B) + (half ? ", float16 weights" : ""));
    torch::manual_seed(5);
    c10::InferenceMode guard;
    auto c = micro_rope(rope);
    c.n_kv_heads = kv_heads;
    Llama m(c);
    if (half)
      for (auto& p : m->parameters()) p.copy_(p.to(torch::kHalf));
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
    on_one.set_f16_weights(false);
    on_two.set_f16_weights(false), on_two.set_f16_weights(true);  // and back
    EXPECT_FALSE(on_one.reads_f16_weights());
    EXPECT_EQ(on_two.reads_f16_weights(), half && loong::detail::packed_f16_supported());
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
