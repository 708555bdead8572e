// Speculative decoding (gen/code_sampler.h): drafts scored in one model call,
// accepted by the exact rule, the cache rolled back past the first rejection.
#include <cmath>
#include <map>
#include <vector>

#include <torch/torch.h>

#include "loong/gen/code_sampler.h"
#include "loong/gen/long_video.h"
#include "loong/gen/sampling.h"
#include "loong/lm/model.h"
#include "loong/tokenizer/model.h"
#include "fixtures.h"
#include "test_util.h"

using namespace loong;
using namespace loong::gen;
using loong::test::expect_error;
using loong::test::micro_lm;

namespace {

// Chi-square's critical value for `dof` degrees of freedom at p = 0.001
// (Wilson and Hilferty's approximation, within 1% from 3 degrees up).
double chi2_critical(int dof) {
  const double d = dof, z = 3.09;
  return d * std::pow(1 - 2 / (9 * d) + z * std::sqrt(2 / (9 * d)), 3);
}

// Pearson's statistic of `counts` (n draws) against `probs`, cells with an
// expected count under 5 pooled into one; dof returned through `dof`.
double chi2(const std::vector<double>& probs, const std::vector<double>& counts, double n, int& dof) {
  double stat = 0, pooled_p = 0, pooled_c = 0;
  int cells = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] * n < 5) {
      pooled_p += probs[i], pooled_c += counts[i];
      continue;
    }
    stat += std::pow(counts[i] - n * probs[i], 2) / (n * probs[i]);
    ++cells;
  }
  if (pooled_p * n >= 5) stat += std::pow(pooled_c - n * pooled_p, 2) / (n * pooled_p), ++cells;
  dof = cells - 1;
  return stat;
}

}  // namespace

TEST(Speculative, GreedyGivesTheSameCodesInFewerCalls) {
  // Guided, left-padded prompts with a latent frame of prefix codes (a
  // re-encoded clip start), 1D and 3D rotary positions, several draft lengths:
  // the codes of one-at-a-time greedy decoding, exactly.
  for (const std::string rope : {"1d", "3d"}) {
    SCOPED_TRACE("rope " + rope);
    torch::manual_seed(3);
    auto c = micro_lm();
    if (rope == "3d") c.rope = "3d", c.rope_rows = 2, c.rope_cols = 2;
    lm::Llama model(c);
    lm::Vocab vocab(20, 64);
    SamplingOptions o;
    o.cfg_scale = 2.5;
    o.top_k = 1;
    std::vector<ClipPrompt> prompts = {{{1, 2, 3, 4, 5}, {7, 8, 9, 10}}, {{9}, {10, 11, 12, 13}}};
    CodeSampler plain(model, vocab, o);
    const int64_t n = 48;
    int64_t calls = 0, all_calls = 0;
    auto want = plain.generate(prompts, n);
    for (int64_t k : {2, 4, 8}) {
      CodeSampler spec(model, vocab, o), general(model, vocab, o), shared(model, vocab, o);
      spec.set_speculation({k, 4});  // the fused step over K positions (lm::DecodeStep::positions)
      general.set_speculation({k, 4});
      general.set_reference_decode(true);  // the general forward pass
      shared.set_speculation({k, 4});
      shared.set_share_weights(true);  // the step on the model's own weights, as large models take
      auto got = spec.generate(prompts, n);
      EXPECT_TRUE(torch::equal(got, want)) << "draft " << k;
      EXPECT_TRUE(torch::equal(general.generate(prompts, n), want)) << "draft " << k << ", general forward";
      EXPECT_TRUE(torch::equal(shared.generate(prompts, n), want)) << "draft " << k << ", shared weights";
      const auto& t = spec.timings();
      EXPECT_GE(t.decode_calls, (n - 1 + k - 1) / k) << "draft " << k;
      EXPECT_EQ(t.sampled, n);
      calls += t.decode_calls;
      all_calls += n - 1;
    }
    EXPECT_LT(calls, all_calls) << "some drafts were accepted, so fewer calls were made";
  }
}

TEST(Speculative, CacheAfterRejectionsIsOneAtATimes) {
  // After drafts were rejected and the cache rolled back, its keys and values
  // are those of decoding the same codes one at a time.
  torch::manual_seed(4);
  lm::Llama model(micro_lm());
  lm::Vocab vocab(20, 64);
  SamplingOptions o;
  o.cfg_scale = 2.0;
  o.top_k = 1;
  std::vector<ClipPrompt> prompts = {{{1, 2, 3}, {5, 6, 7, 8}}};
  CodeSampler plain(model, vocab, o), spec(model, vocab, o);
  plain.set_reference_decode(true);  // one at a time on the general forward pass; speculation on the fused K-position step
  spec.set_speculation({6, 4});
  const int64_t n = 40;
  auto a = plain.generate(prompts, n), b = spec.generate(prompts, n);
  ASSERT_TRUE(torch::equal(a, b));
  EXPECT_LT(spec.timings().accepted, spec.timings().drafted) << "some drafts were rejected";
  const auto* ca = plain.cache();
  const auto* cb = spec.cache();
  ASSERT_EQ(ca->length, cb->length);
  for (size_t l = 0; l < ca->k.size(); ++l) {
    auto ka = ca->k[l].narrow(2, 0, ca->length), kb = cb->k[l].narrow(2, 0, cb->length);
    auto va = ca->v[l].narrow(2, 0, ca->length), vb = cb->v[l].narrow(2, 0, cb->length);
    EXPECT_LT((ka - kb).abs().max().item<double>(), 1e-5) << "layer " << l;
    EXPECT_LT((va - vb).abs().max().item<double>(), 1e-5) << "layer " << l;
  }
}

TEST(Speculative, SamplingKeepsTheDistribution) {
  // Four codes, top-k 2, guidance: the joint distribution of the first three
  // codes, computed exactly from the model, against 3,000 draws with drafts of
  // the last code (frame_codes 1). Pearson's test at p = 0.001; and the same
  // test would have caught the acceptance rules that are off (checked below
  // from their own exact distributions).
  torch::manual_seed(8);
  auto c = micro_lm(4);
  lm::Llama model(c);
  {
    torch::NoGradGuard ng;
    model->output->weight.mul_(6);  // peaked distributions: a wrong rule shows more
  }
  model->eval();
  lm::Vocab vocab(20, 4);
  SamplingOptions o;
  o.cfg_scale = 1.5;
  o.top_k = 2;
  o.seed = 5;
  const ClipPrompt prompt{{3, 4, 5}, {}};
  const int V = 4;

  // p(code | codes before) as the sampler draws it: guided, top-k.
  c10::InferenceMode guard;
  auto probs_after = [&](const std::vector<int32_t>& codes) {
    auto row = [&](const std::vector<int32_t>& text) {
      auto seq = vocab.sequence(text, codes, false);
      auto ids = torch::tensor(std::vector<int64_t>(seq.begin(), seq.end())).view({1, -1});
      return model->forward(ids).select(1, ids.size(1) - 1).narrow(1, vocab.text_size(), V);
    };
    auto logits = cfg_combine(row(prompt.text), row({}), o.cfg_scale);
    auto p = sampling_probs(logits, o)[0];
    return std::vector<double>(p.data_ptr<float>(), p.data_ptr<float>() + V);
  };
  std::vector<double> exact(V * V * V, 0);
  // The rules that are off, for the power check: (a) accept a draft whenever
  // it is in the top k; (b) on rejection, draw from p with the draft kept.
  std::vector<double> in_top_k(V * V * V, 0), keeps_draft(V * V * V, 0);
  const auto p0 = probs_after({});
  for (int a = 0; a < V; ++a) {
    const auto p1 = probs_after({a});
    for (int b = 0; b < V; ++b) {
      const auto p2 = probs_after({a, b});
      for (int d = 0; d < V; ++d) exact[(a * V + b) * V + d] = p0[a] * p1[b] * p2[d];
    }
    // Drafts: code 1's is code 0; code 2's is code 1's draft (the same), as
    // one call scores both.
    for (int b = 0; b < V; ++b) {
      const double q1a = p1[a] > 0 ? (b == a) : p1[b];
      const double q1b = p1[a] * (b == a) + (1 - p1[a]) * p1[b];
      const auto p2 = probs_after({a, b});
      for (int d = 0; d < V; ++d) {
        // After code 1 was the draft a (accepted), code 2's draft is a too;
        // after a fresh draw, the next call drafts b.
        const int draft2 = (b == a) ? a : b;
        const double qa = p2[draft2] > 0 ? (d == draft2) : p2[d];
        const double qb = p2[draft2] * (d == draft2) + (1 - p2[draft2]) * p2[d];
        in_top_k[(a * V + b) * V + d] = p0[a] * q1a * qa;
        keeps_draft[(a * V + b) * V + d] = p0[a] * q1b * qb;
      }
    }
  }
  const double n = 3000;
  std::vector<double> counts(V * V * V, 0), plain_counts(V * V * V, 0);
  CodeSampler spec(model, vocab, o), plain(model, vocab, o);
  spec.set_speculation({3, 1});
  for (int i = 0; i < n; ++i) {
    auto s = spec.generate({prompt}, 3), p = plain.generate({prompt}, 3);
    counts[(s[0][0].item<int64_t>() * V + s[0][1].item<int64_t>()) * V + s[0][2].item<int64_t>()] += 1;
    plain_counts[(p[0][0].item<int64_t>() * V + p[0][1].item<int64_t>()) * V + p[0][2].item<int64_t>()] += 1;
  }
  for (size_t i = 0; i < exact.size(); ++i) {
    if (exact[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "a sequence one-at-a-time sampling can never draw: " << i;
    }
  }
  int dof = 0;
  const double stat = chi2(exact, counts, n, dof);
  ASSERT_GE(dof, 3);
  const double crit = chi2_critical(dof);
  EXPECT_LT(stat, crit) << "speculative draws (" << dof << " degrees of freedom)";
  int dof_plain = 0;
  const double stat_plain = chi2(exact, plain_counts, n, dof_plain);
  EXPECT_LT(stat_plain, chi2_critical(dof_plain)) << "one at a time, the test's control";
  EXPECT_GT(spec.timings().accepted, 0) << "drafts were accepted, so the rule was exercised";
  EXPECT_LT(spec.timings().decode_calls, plain.timings().decode_calls);
  // Power: the statistic a wrong rule's draws would give on average is
  // n * sum (w - p)^2 / p + dof; each lies far above the critical value.
  for (const auto* wrong : {&in_top_k, &keeps_draft}) {
    double noncentral = 0;
    for (size_t i = 0; i < exact.size(); ++i)
      if (exact[i] > 0) noncentral += std::pow((*wrong)[i] - exact[i], 2) / exact[i];
      else if ((*wrong)[i] > 0) noncentral += 1e9;  // a sequence the sampler can never draw
    EXPECT_GT(n * noncentral, 3 * crit) << (wrong == &in_top_k ? "accept in top-k" : "keep the draft on rejection");
  }
}

TEST(Speculative, LongVideosKeepTheirCodesAndOptionsAreChecked) {
  // Clips re-encoded from the last frames, with frame-back drafts from the
  // re-encoded prefix: the frames of one-at-a-time greedy decoding.
  torch::manual_seed(6);
  tokenizer::VideoTokenizer tok(loong::test::micro_tokenizer());
  tok->eval();
  lm::Llama model(micro_lm());
  SamplingOptions s;
  s.top_k = 1;
  LongVideoGenerator g(tok, model, lm::Vocab(20, 64), s, loong::test::id_encoder());
  LongVideoOptions o;
  o.seconds = 6;
  o.clip_frames = 17;
  o.overlap = 5;
  auto frames_of = [&](int64_t speculative) {
    o.speculative = speculative;
    std::vector<at::Tensor> out;
    LongVideoCallbacks cb;
    cb.frames = [&](const at::Tensor& f, int64_t) { out.push_back(f); };
    auto t = g.run(o, loong::test::prompts({"1 2", "3"}), cb);
    return std::make_pair(torch::cat(out, 1), t);
  };
  auto [plain, tp] = frames_of(0);
  auto [spec, ts] = frames_of(5);
  EXPECT_TRUE(torch::equal(plain, spec));
  EXPECT_EQ(tp.drafted, 0);
  EXPECT_GT(ts.drafted, 0);
  EXPECT_LE(ts.decode_calls, tp.decode_calls);  // random weights rarely repeat a frame: few drafts pass

  CodeSampler sampler(model, lm::Vocab(20, 64), s);
  expect_error([&] { sampler.set_speculation({-1, 4}); }, {"--speculative", ">= 0"});
  expect_error([&] { sampler.set_speculation({65, 4}); }, {"--speculative", "at most 64"});
  o.speculative = 100;
  expect_error([&] { validate(o, 4); }, {"--speculative", "[0, 64]"});
}
