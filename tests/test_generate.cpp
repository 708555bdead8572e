// Generation (docs/method.md §5): cached decoding, guidance, sampling, the clip plan
// of minute-level videos, re-encoding, prompt schedules, upscaling, bundles.
#include <cstdlib>
#include <limits>
#include <filesystem>
#include <set>

#include <torch/script.h>

#include "loong/core/json_util.h"
#include "loong/core/torch_compat.h"
#include "loong/gen/bundle.h"
#include "loong/gen/code_sampler.h"
#include "loong/gen/generate.h"
#include "loong/gen/long_video.h"
#include "loong/gen/sampling.h"
#include "loong/gen/sr.h"
#include "loong/gen/upscale.h"
#include "loong/io/safetensors.h"
#include "loong/lm/model.h"
#include "loong/ops/decode_ops.h"
#include "loong/ops/device.h"
#include "loong/tokenizer/model.h"
#include "loong/tokenizer/tokens.h"
#include "fixtures.h"
#include "test_util.h"

using namespace loong;
using namespace loong::gen;
using loong::test::expect_error;
using loong::test::TempDir;
using loong::test::micro_lm;
using loong::test::micro_options;
using loong::test::micro_tokenizer;

namespace {

// The frames of each clip of one run of `g`.
std::vector<at::Tensor> clip_frames(LongVideoGenerator& g, const LongVideoOptions& o,
                                    const std::vector<PromptSchedule>& schedules) {
  std::vector<at::Tensor> out;
  LongVideoCallbacks cb;
  cb.frames = [&](const at::Tensor& f, int64_t) { out.push_back(f.clone()); };
  g.run(o, schedules, cb);
  return out;
}

}  // namespace

TEST(Gen, CachedDecodingMatchesFullForward) {
  torch::manual_seed(0);
  c10::InferenceMode guard;
  lm::Llama model(micro_lm());
  model->eval();
  auto tokens = torch::randint(0, model->config.vocab_size(), {2, 14}, torch::kLong);
  auto full = model->forward(tokens);  // [2, 14, V]

  // Prefill 6 positions, then one token at a time.
  lm::KvCache cache(model->config, 2, 20, torch::kCPU);
  std::vector<torch::Tensor> parts{model->forward(tokens.narrow(1, 0, 6), &cache, 0)};
  for (int64_t t = 6; t < 14; ++t) parts.push_back(model->forward(tokens.narrow(1, t, 1), &cache, t));
  EXPECT_LT((torch::cat(parts, 1) - full).abs().max().item<double>(), 1e-4);

  // Row 1 padded by 3 on the left and masked: the same logits as unpadded.
  const int64_t pad = 3;
  auto padded = torch::cat({torch::full({2, pad}, model->config.vocab_size() - 10, torch::kLong), tokens}, 1);
  lm::KvCache pc(model->config, 2, 20, torch::kCPU);
  pc.valid = torch::ones({2, 20}, torch::kBool);
  pc.valid.narrow(1, 0, pad).fill_(false);
  auto a = model->forward(padded.narrow(1, 0, pad + 8), &pc, 0).narrow(1, pad, 8);
  auto b = model->forward(padded.narrow(1, pad + 8, 1), &pc, pad + 8);
  EXPECT_LT((a - full.narrow(1, 0, 8)).abs().max().item<double>(), 1e-4);
  EXPECT_LT((b - full.narrow(1, 8, 1)).abs().max().item<double>(), 1e-4);
  // Without the mask the padding changes the result: the test can fail.
  lm::KvCache nc(model->config, 2, 20, torch::kCPU);
  auto c = model->forward(padded.narrow(1, 0, pad + 8), &nc, 0).narrow(1, pad, 8);
  EXPECT_GT((c - full.narrow(1, 0, 8)).abs().max().item<double>(), 1e-3);
}

TEST(Gen, GuidanceArithmetic) {
  auto cond = torch::tensor({{1.0f, 4.0f, -2.0f}}), uncond = torch::tensor({{0.5f, 1.0f, 2.0f}});
  EXPECT_TRUE(torch::allclose(cfg_combine(cond, uncond, 1.0), cond));
  EXPECT_TRUE(torch::allclose(cfg_combine(cond, uncond, 0.0), uncond));
  EXPECT_TRUE(torch::allclose(cfg_combine(cond, uncond, 7.5), torch::tensor({{4.25f, 23.5f, -28.0f}})));
}

TEST(Gen, TopKAndTopPStayInsideTheirSets) {
  torch::manual_seed(1);
  auto logits = torch::randn({4, 50});
  auto top = std::get<1>(logits.topk(5, -1));
  SamplingOptions o;
  o.top_k = 5;
  auto gen = make_generator(3);
  std::set<int64_t> seen;
  for (int i = 0; i < 300; ++i) {
    auto codes = sample_codes(logits, o, gen);
    for (int64_t b = 0; b < 4; ++b) {
      const int64_t c = codes[b].item<int64_t>();
      EXPECT_TRUE((top[b] == c).any().item<bool>()) << "code " << c << " is outside the top 5 of row " << b;
      if (b == 0) seen.insert(c);
    }
  }
  EXPECT_GT(seen.size(), 1u) << "top-k 5 should draw more than one code";
  // top-p: one dominant logit holding > p of the mass is always chosen.
  auto peaked = torch::zeros({1, 50});
  peaked[0][7] = 10;
  o.top_k = 50;
  o.top_p = 0.9;
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_codes(peaked, o, gen).item<int64_t>(), 7);
  // Greedy is the argmax, whatever the generator.
  o.top_k = 1;
  EXPECT_TRUE(torch::equal(sample_codes(logits, o, gen), logits.argmax(-1)));
}

TEST(Gen, SampledCodesFollowTheirDistribution) {
  // sample_codes' own loop (CPU, float32) against sampling_probs, the
  // distribution speculative decoding accepts by: frequencies over 20,000
  // draws a row within 5 standard deviations, nothing outside the top k and
  // the top-p prefix. A pick one candidate off, or a softmax without the
  // temperature, moves some code by far more.
  torch::manual_seed(4);
  auto logits = torch::randn({2, 12}) * 2;
  SamplingOptions o;
  o.top_k = 6;
  o.temperature = 0.8;
  o.top_p = 0.9;
  const auto probs = sampling_probs(logits, o);
  auto gen = make_generator(5);
  const int n = 20000;
  auto counts = torch::zeros({2, 12}, torch::kDouble);
  for (int i = 0; i < n; ++i) {
    auto codes = sample_codes(logits, o, gen);
    for (int64_t b = 0; b < 2; ++b) counts[b][codes[b].item<int64_t>()] += 1;
  }
  auto freq = counts / n;
  auto p = probs.to(torch::kDouble);
  auto sd = (p * (1 - p) / n).sqrt();
  EXPECT_TRUE(((freq - p).abs() <= 5 * sd + 1e-12).all().item<bool>()) << freq << "\n" << p;
  EXPECT_TRUE((counts.masked_select(p == 0) == 0).all().item<bool>());
  EXPECT_GT((p > 0).sum().item<int64_t>(), 4) << "the test needs several codes to choose from";
}

TEST(Gen, SamplingOptionErrorsNameTheFlag) {
  SamplingOptions o;
  o.top_k = 0;
  expect_error([&] { validate(o); }, {"--top-k", ">= 1"});
  o = {};
  o.temperature = 0;
  expect_error([&] { validate(o); }, {"--temperature"});
  o = {};
  o.top_p = 1.5;
  expect_error([&] { validate(o); }, {"--top-p"});
  o = {};
  o.cfg_scale = -1;
  expect_error([&] { validate(o); }, {"--cfg"});
  // Scores that overflowed (guidance 1e38 on real logits gives inf - inf):
  // a named error, not multinomial's internal one.
  o = {};
  auto gen = make_generator(1);
  auto bad = torch::zeros({2, 16});
  bad[1][3] = std::numeric_limits<float>::infinity();
  bad[1][5] = std::numeric_limits<float>::infinity();
  expect_error([&] { sample_codes(bad, o, gen); }, {"sampling", "not finite", "--cfg"});
  expect_error([&] { sampling_probs(bad, o); }, {"not finite"});
  bad[1][3] = bad[1][5] = 0;
  EXPECT_EQ(sample_codes(bad, o, gen).size(0), 2);
}

TEST(Gen, OnlyVideoCodesAreSampledAndGreedyIsDeterministic) {
  torch::manual_seed(2);
  lm::Llama model(micro_lm(16));
  lm::Vocab vocab(20, 16);
  {
    // Make every text and special id overwhelmingly likely: the full
    // vocabulary would never give a video id, the sampler must.
    torch::NoGradGuard ng;
    auto w = model->output->weight;
    w.narrow(0, vocab.text_size(), 16).zero_();
    w.narrow(0, 0, vocab.text_size()).mul_(1000);
    w.narrow(0, vocab.pad(), lm::kSpecialTokens).mul_(1000);
  }
  SamplingOptions o;
  o.top_k = 1000;  // the whole vocabulary
  o.cfg_scale = 3;
  CodeSampler s(model, vocab, o);
  std::vector<ClipPrompt> prompts = {{{1, 2, 3}, {}}, {{4}, {}}};
  auto codes = s.generate(prompts, 30);
  ASSERT_EQ(codes.sizes(), (std::vector<int64_t>{2, 30}));
  EXPECT_GE(codes.min().item<int64_t>(), 0);
  EXPECT_LT(codes.max().item<int64_t>(), 16);

  torch::manual_seed(3);
  lm::Llama m2(micro_lm());
  lm::Vocab v2(20, 64);
  SamplingOptions greedy;
  greedy.top_k = 1;
  greedy.seed = 1;
  auto g1 = CodeSampler(m2, v2, greedy).generate(prompts, 25);
  greedy.seed = 99;
  auto g2 = CodeSampler(m2, v2, greedy).generate(prompts, 25);
  EXPECT_TRUE(torch::equal(g1, g2));
  SamplingOptions sampled;
  sampled.seed = 5;
  auto s1 = CodeSampler(m2, v2, sampled).generate(prompts, 25);
  auto s2 = CodeSampler(m2, v2, sampled).generate(prompts, 25);
  EXPECT_TRUE(torch::equal(s1, s2)) << "the same seed gives the same codes";
  sampled.seed = 6;
  EXPECT_FALSE(torch::equal(s1, CodeSampler(m2, v2, sampled).generate(prompts, 25)));
}

TEST(Gen, FusedDecodeGivesTheReferenceCodes) {
  // The sampler's fused step (lm::DecodeStep) against the model's general
  // forward pass: guided, left-padded prompts with video prefixes, top-k
  // sampling from one seed. The same codes, down to the last draw.
  // With 3D rotary positions too (a 2 x 2 latent grid), where each step's
  // positions come from the <sov> the prompt holds.
  for (const std::string rope : {"1d", "3d"}) {
    SCOPED_TRACE("rope " + rope);
    torch::manual_seed(6);
    auto c = micro_lm();
    if (rope == "3d") c.rope = "3d", c.rope_rows = 2, c.rope_cols = 2;
    lm::Llama model(c);
    lm::Vocab vocab(20, 64);
    SamplingOptions o;
    o.cfg_scale = 2.5;
    o.top_k = 8;
    o.seed = 11;
    std::vector<ClipPrompt> prompts = {{{1, 2, 3, 4, 5}, {7, 8}}, {{9}, {10, 11}}};
    CodeSampler fused(model, vocab, o), reference(model, vocab, o);
    reference.set_reference_decode(true);
    auto a = fused.generate(prompts, 60), b = reference.generate(prompts, 60);
    EXPECT_TRUE(torch::equal(a, b));
    EXPECT_GT(std::set<int64_t>(a.data_ptr<int64_t>(), a.data_ptr<int64_t>() + a.numel()).size(), 4u)
        << "sampled codes vary, so a wrong step would show";
  }
}

TEST(Gen, BatchedPromptsMatchOneAtATime) {
  // Prompts of different lengths in one (left-padded) batch give the same
  // greedy codes as each prompt alone.
  torch::manual_seed(4);
  lm::Llama model(micro_lm());
  lm::Vocab vocab(20, 64);
  SamplingOptions o;
  o.top_k = 1;
  CodeSampler s(model, vocab, o);
  std::vector<ClipPrompt> prompts = {{{1, 2, 3, 4, 5, 6}, {7, 8}}, {{9}, {10, 11}}};
  auto both = s.generate(prompts, 12);
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_TRUE(torch::equal(both[static_cast<int64_t>(i)], s.generate({prompts[i]}, 12)[0])) << "prompt " << i;
  expect_error([&] { s.generate({{{1}, {}}, {{1}, {3}}}, 4); }, {"same number of video prefix tokens"});
  expect_error([&] { s.generate(prompts, 200); }, {"prompt", "max_seq_len", "160"});
}

TEST(Gen, ClipPlanCoversTheRequestedFrames) {
  for (int64_t total : {1, 7, 65, 66, 125, 126, 390, 391}) {
    auto plans = plan_clips(total, 65, 5, 4);
    int64_t sum = 0;
    for (size_t i = 0; i < plans.size(); ++i) {
      const auto& p = plans[i];
      EXPECT_EQ(p.start, sum);
      EXPECT_EQ((p.frames - 1) % 4, 0);
      EXPECT_LE(p.frames, 65);
      EXPECT_EQ(p.latents, (p.frames - 1) / 4 + 1);
      EXPECT_EQ(p.prefix_frames, i == 0 ? 0 : 5);
      EXPECT_EQ(p.prefix_latents, i == 0 ? 0 : 2);
      EXPECT_GE(p.frames, p.prefix_frames + p.emit);
      EXPECT_LT(p.frames, p.prefix_frames + p.emit + 4) << "no more latent frames than needed";
      sum += p.emit;
    }
    EXPECT_EQ(sum, total);
  }
  EXPECT_EQ(plan_clips(390, 65, 5, 4).size(), 7u);  // 65 + 6 x 60 >= 390
  EXPECT_EQ(plan_clips(30, 65, 5, 4, true)[0].prefix_frames, 5);
  expect_error([] { plan_clips(10, 65, 4, 4); }, {"1 + 4k"});
  LongVideoOptions o;
  o.overlap = 6;
  expect_error([&] { validate(o, 4); }, {"--overlap-frames", "1 + 4k"});
  o.overlap = 65;
  expect_error([&] { validate(o, 4); }, {"--overlap-frames", "smaller"});
  o = {};
  o.seconds = -1;
  expect_error([&] { validate(o, 4); }, {"--seconds", "> 0"});
}

TEST(Gen, LongVideoHasExactlyTheRequestedFrames) {
  torch::manual_seed(5);
  tokenizer::VideoTokenizer tok(micro_tokenizer());
  lm::Llama model(micro_lm());
  SamplingOptions s;
  s.seed = 1;
  LongVideoGenerator g(tok, model, lm::Vocab(20, 64), s, loong::test::id_encoder());
  for (double seconds : {0.1, 2.0, 2.6, 7.7}) {
    auto o = micro_options(seconds);
    int64_t frames = 0, calls = 0, last_done = 0, last_total = 0;
    LongVideoCallbacks cb;
    cb.frames = [&](const at::Tensor& f, int64_t) {
      ASSERT_EQ(f.dim(), 5);
      EXPECT_EQ(f.size(0), 2);
      EXPECT_EQ(f.size(2), 16);
      EXPECT_EQ(f.scalar_type(), torch::kUInt8);
      frames += f.size(1);
      ++calls;
    };
    cb.progress = [&](int64_t d, int64_t t) { last_done = d, last_total = t; };
    auto t = g.run(o, loong::test::prompts({"1 2", "1 2"}), cb);
    EXPECT_EQ(frames, std::llround(seconds * 6.5)) << seconds << " s";
    EXPECT_EQ(calls, static_cast<int64_t>(plan_clips(frames, 17, 5, 4).size()));
    EXPECT_EQ(last_done, last_total);
    EXPECT_EQ(t.codes, last_total);
  }
}

TEST(Gen, EachClipStartsFromExactlyNReencodedFrames) {
  torch::manual_seed(6);
  tokenizer::VideoTokenizer tok(micro_tokenizer());
  tok->eval();
  lm::Llama model(micro_lm());
  LongVideoGenerator g(tok, model, lm::Vocab(20, 64), SamplingOptions{}, loong::test::id_encoder());
  for (bool reencode : {true, false}) {
    auto o = micro_options(6);  // 39 frames: 17 + 12 + 10 new frames
    o.reencode = reencode;
    std::vector<at::Tensor> output;
    int checked = 0;
    LongVideoCallbacks cb;
    cb.frames = [&](const at::Tensor& f, int64_t) { output.push_back(f); };
    cb.clip_started = [&](const ClipEvent& ev) {
      if (ev.clip == 0) {
        EXPECT_FALSE(ev.condition_frames.defined());
        EXPECT_EQ(ev.prefix.size(1), 0);
        return;
      }
      EXPECT_EQ(ev.prefix.sizes(), (std::vector<int64_t>{2, 2, 2, 2}));  // 5 frames -> 2 latent frames
      if (!reencode) {
        EXPECT_FALSE(ev.condition_frames.defined());
        return;
      }
      auto so_far = torch::cat(output, 1);
      ASSERT_EQ(ev.condition_frames.size(1), 5);
      EXPECT_TRUE(torch::equal(ev.condition_frames, so_far.narrow(1, so_far.size(1) - 5, 5)));
      c10::InferenceMode guard;
      auto x = ev.condition_frames.permute({0, 4, 1, 2, 3}).to(torch::kFloat).div(127.5).sub(1.0);
      EXPECT_TRUE(torch::equal(ev.prefix, tok->encode(x)));
      ++checked;
    };
    g.run(o, loong::test::prompts({"1", "2"}), cb);
    EXPECT_EQ(checked, reencode ? 2 : 0);
  }
}

TEST(Gen, FirstClipGuidanceAppliesToTheFirstClipOnly) {
  torch::manual_seed(7);
  tokenizer::VideoTokenizer tok(micro_tokenizer());
  lm::Llama model(micro_lm());
  auto clips = [&](double cfg, double first) {
    SamplingOptions s;
    s.seed = 3;
    s.cfg_scale = cfg;
    LongVideoGenerator g(tok, model, lm::Vocab(20, 64), s, loong::test::id_encoder());
    auto o = micro_options(6);  // three clips
    o.first_clip_cfg = first;
    return clip_frames(g, o, loong::test::prompts({"1 2"}));
  };
  const auto none = clips(1, 0), all = clips(4, 0), later = clips(4, 1);
  ASSERT_EQ(later.size(), 3u);
  EXPECT_TRUE(torch::equal(later[0], none[0])) << "the first clip is sampled at --first-clip-cfg";
  EXPECT_FALSE(torch::equal(later[0], all[0]));
  // The second clip continues the same first clip as the unguided run, with guidance.
  EXPECT_FALSE(torch::equal(later[1], none[1]));
  auto o = micro_options(1);
  o.first_clip_cfg = -1;
  expect_error([&] { validate(o, 4); }, {"--first-clip-cfg"});
}

// --guide-against-previous: the first clip after a prompt change is guided
// against the previous prompt; every other clip, and a video of one prompt,
// is the same as without it.
TEST(Gen, AStorysNewPromptIsGuidedAgainstThePreviousOne) {
  torch::manual_seed(8);
  tokenizer::VideoTokenizer tok(micro_tokenizer());
  lm::Llama model(micro_lm());
  SamplingOptions s;
  s.seed = 4;
  s.cfg_scale = 3;
  auto clips = [&](const PromptSchedule& schedule, bool against) {
    LongVideoGenerator g(tok, model, lm::Vocab(20, 64), s, loong::test::id_encoder());
    auto o = micro_options(6);  // clips from 0, 2.6 and 4.5 s
    o.guide_against_previous = against;
    return clip_frames(g, o, {schedule});
  };
  const auto story = PromptSchedule::parse("0: 1 2\n2: 3\n", "story");
  const auto plain = clips(story, false), against = clips(story, true);
  ASSERT_EQ(against.size(), 3u);
  EXPECT_TRUE(torch::equal(against[0], plain[0])) << "the first clip has no previous prompt";
  EXPECT_FALSE(torch::equal(against[1], plain[1])) << "clip 1 starts prompt '3' and is guided against '1 2'";
  const auto one = clips(PromptSchedule::single("1 2"), false), one_against = clips(PromptSchedule::single("1 2"), true);
  for (size_t c = 0; c < one.size(); ++c) EXPECT_TRUE(torch::equal(one[c], one_against[c])) << "clip " << c;

  // The guidance rows hold the guide text, left-padded like the prompts.
  const lm::Vocab vocab(20, 64);
  const auto packed = pack_prompts(vocab, {{{1, 2}, {5}, {3}}, {{4}, {5}, {}}}, /*guided=*/true, 2);
  ASSERT_EQ(packed.tokens.size(0), 4);
  auto row = [&](int64_t r) {
    auto t = packed.tokens[r];
    std::vector<int32_t> ids;
    for (int64_t j = 0; j < t.size(0); ++j)
      if (t[j].item<int64_t>() != vocab.pad()) ids.push_back(static_cast<int32_t>(t[j].item<int64_t>()));
    return ids;
  };
  EXPECT_EQ(row(0), vocab.sequence({1, 2}, {5}, false));
  EXPECT_EQ(row(2), vocab.sequence({3}, {5}, false)) << "the first prompt's guide text";
  EXPECT_EQ(row(3), vocab.sequence({}, {5}, false)) << "no guide text: unconditional";
  EXPECT_EQ(packed.tokens[2][0].item<int64_t>(), vocab.pad()) << "left-padded";
}

TEST(Gen, EachClipTakesItsSchedulesPromptEncodedOnce) {
  torch::manual_seed(8);
  tokenizer::VideoTokenizer tok(micro_tokenizer());
  lm::Llama model(micro_lm());
  SamplingOptions s;
  s.seed = 4;
  std::vector<std::string> encoded;
  auto counting = [&](const std::string& p) {
    encoded.push_back(p);
    return loong::test::id_encoder()(p);
  };
  auto clips = [&](const PromptSchedule& schedule) {
    LongVideoGenerator g(tok, model, lm::Vocab(20, 64), s, counting);  // the sampler's generator starts anew
    return clip_frames(g, micro_options(6), {schedule});  // clips from 0, 2.6 and 4.5 s
  };
  const auto story = clips(PromptSchedule::parse("0: 1 2\n2: 3\n4: 1 2\n", "story"));
  EXPECT_EQ(encoded, (std::vector<std::string>{"1 2", "3"})) << "each distinct prompt once, before any clip";
  encoded.clear();
  const auto same = clips(PromptSchedule::single("1 2"));
  ASSERT_EQ(story.size(), 3u);
  EXPECT_TRUE(torch::equal(story[0], same[0])) << "clip 0 is made from the story's first prompt";
  EXPECT_FALSE(torch::equal(story[1], same[1])) << "clip 1 (from 2.6 s) takes the prompt given from 2 s";

  // A prompt that gives no text pieces is refused before any frame is made.
  LongVideoGenerator g(tok, model, lm::Vocab(20, 64), s, counting);
  int64_t frames = 0;
  LongVideoCallbacks cb;
  cb.frames = [&](const at::Tensor&, int64_t) { ++frames; };
  expect_error([&] { g.run(micro_options(6), loong::test::prompts({"1", "no ids here"}), cb); },
               {"--prompt", "no text pieces", "no ids here"});
  EXPECT_EQ(frames, 0);
}

// bf16/int8 weights are for the CPU's decode step: another device is refused
// before a model loads, and weights that cannot be narrowed are named.
TEST(Gen, NarrowDecodeWeightsAreForTheCpuAndFiniteWeights) {
  loong::gen::GenerateRequest r;
  r.decode_weights = "int8";
  r.device = c10::Device("cuda");
  expect_error([&] { loong::gen::validate_settings(r); }, {"--decode-weights", "CPU's decode step"});
  r.device = c10::Device("cpu");
  loong::gen::validate_settings(r);
  auto w = torch::randn({4, 8});
  EXPECT_EQ(loong::quantize_rows(w, "int8").w.scalar_type(), torch::kChar);
  w[2][3] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { loong::quantize_rows(w, "int8"); }, {"--decode-weights", "NaN or infinite", "int8"});
  w[2][3] = std::numeric_limits<float>::infinity();
  expect_error([&] { loong::quantize_rows(w, "bf16"); }, {"--decode-weights", "bf16"});
  EXPECT_TRUE(loong::quantize_rows(w, "f32").w.defined()) << "f32 is not narrowed";
}

TEST(Gen, InitVideoIsContinued) {
  torch::manual_seed(7);
  tokenizer::VideoTokenizer tok(micro_tokenizer());
  lm::Llama model(micro_lm());
  LongVideoGenerator g(tok, model, lm::Vocab(20, 64), SamplingOptions{}, loong::test::id_encoder());
  auto o = micro_options(2);
  o.init_frames = loong::test::natural_clip(9, 16, 16);
  at::Tensor first_condition;
  int64_t frames = 0;
  LongVideoCallbacks cb;
  cb.frames = [&](const at::Tensor& f, int64_t) { frames += f.size(1); };
  cb.clip_started = [&](const ClipEvent& ev) {
    if (ev.clip == 0) first_condition = ev.condition_frames;
  };
  g.run(o, loong::test::prompts({"1"}), cb);
  EXPECT_EQ(frames, 13);
  ASSERT_TRUE(first_condition.defined());
  EXPECT_TRUE(torch::equal(first_condition[0], o.init_frames.narrow(0, 4, 5)));
  o.init_frames = loong::test::natural_clip(3, 16, 16);
  expect_error([&] { g.run(o, loong::test::prompts({"1"}), cb); }, {"--init-video", "3 frames", "at least 5"});
  o.init_frames = loong::test::natural_clip(9, 32, 32);
  expect_error([&] { g.run(o, loong::test::prompts({"1"}), cb); }, {"--init-video", "16"});
}

TEST(Gen, PromptSchedules) {
  auto s = PromptSchedule::parse("# story\na red shirt\n\na blue bag\n", "p.txt");
  ASSERT_EQ(s.entries.size(), 2u);
  EXPECT_EQ(s.at(0, 0), "a red shirt");
  EXPECT_EQ(s.at(1, 9.2), "a blue bag");
  EXPECT_EQ(s.at(5, 50), "a blue bag");  // the last one repeats
  auto t = PromptSchedule::parse("0: a red shirt\n20: a blue bag\n40.5: a sneaker\n", "t.txt");
  EXPECT_EQ(t.at(0, 0), "a red shirt");
  EXPECT_EQ(t.at(2, 19.9), "a red shirt");
  EXPECT_EQ(t.at(3, 20), "a blue bag");
  EXPECT_EQ(t.at(9, 41), "a sneaker");
  EXPECT_EQ(PromptSchedule::parse("a shirt: red\n", "x").entries[0].text, "a shirt: red");  // not a time
  expect_error([] { PromptSchedule::parse("0: a\nb\n", "m.txt"); }, {"m.txt:2", "mix"});
  expect_error([] { PromptSchedule::parse("0: a\n20: b\n10: c\n", "m.txt"); }, {"m.txt:3", "increase"});
  expect_error([] { PromptSchedule::parse("5: a\n", "m.txt"); }, {"m.txt:1", "start at 0"});
  expect_error([] { PromptSchedule::parse("0:\n", "m.txt"); }, {"m.txt:1", "empty prompt"});
  expect_error([] { PromptSchedule::parse("# nothing\n\n", "m.txt"); }, {"m.txt", "no prompts"});
}

TEST(Gen, Upscaling) {
  auto m = lanczos_matrix(8, 32);
  EXPECT_TRUE(torch::allclose(m.sum(1), torch::ones({32}), 1e-5, 1e-5));
  auto flat = torch::full({2, 8, 8, 3}, 77, torch::kUInt8);
  for (const char* method : {"bicubic", "lanczos"}) {
    auto up = resampling_upscaler(4, method)(flat);
    EXPECT_EQ(up.sizes(), (std::vector<int64_t>{2, 32, 32, 3}));
    EXPECT_TRUE(torch::equal(up, torch::full({2, 32, 32, 3}, 77, torch::kUInt8))) << method;
    // Upscaling then averaging back down returns a smooth image closely.
    auto clip = loong::test::natural_clip(1, 16, 16);
    auto back = resampling_upscaler(2, method)(clip).to(torch::kFloat).view({1, 16, 2, 16, 2, 3}).mean({2, 4});
    EXPECT_LT((back - clip.to(torch::kFloat)).abs().mean().item<double>(), 3.0) << method;
  }
  EXPECT_TRUE(torch::equal(resampling_upscaler(1, "lanczos")(flat), flat));
  expect_error([] { resampling_upscaler(0, "bicubic"); }, {"--upscale"});
  expect_error([] { resampling_upscaler(2, "nearest"); }, {"--upscale-method", "nearest"});
}

TEST(Gen, BundleRoundTripAndMismatches) {
  TempDir dir;
  torch::manual_seed(8);
  const std::string text = dir / "text";
  std::filesystem::create_directories(text);
  loong::test::write_bytes(text + "/text.model", "not read by this test");
  write_json_file(text + "/text.json", {{"vocab_size", 20}});
  tokenizer::VideoTokenizer tok(micro_tokenizer());
  lm::Llama model(micro_lm());
  BundleInfo info;
  info.clip_frames = 17;
  write_bundle(dir / "b", info, tok, text, model);
  auto b = load_bundle(dir / "b");
  EXPECT_EQ(b.info.clip_frames, 17);
  EXPECT_EQ(b.vocab().video_size(), 64);
  EXPECT_TRUE(torch::equal(b.lm->output->weight, model->output->weight));
  EXPECT_TRUE(torch::equal(b.tokenizer->quantizer->embedding->weight, tok->quantizer->embedding->weight));
  expect_error([&] { write_bundle(dir / "b", info, tok, text, model); }, {"exists", "--force"});
  info.cfg_scale = 1.5;
  info.first_clip_cfg_scale = 1;
  info.temperature = 0.8;
  write_bundle(dir / "b", info, tok, text, model, true);
  EXPECT_FALSE(std::filesystem::exists(dir / "b.partial"));
  EXPECT_EQ(load_bundle(dir / "b").info.cfg_scale, 1.5);
  EXPECT_EQ(load_bundle(dir / "b").info.first_clip_cfg_scale, 1);
  EXPECT_EQ(b.info.cfg_scale, 0);  // the first, without one
  EXPECT_EQ(b.info.temperature, 0);
  auto j = loong::read_json_file(dir / "b/loong.json");
  // The recorded temperature applies unless the flag was given; none recorded leaves it.
  const auto recorded = BundleInfo::from_json(j, "loong.json");
  EXPECT_EQ(recorded.temperature, 0.8);
  SamplingOptions so;
  double first_clip = 0;
  resolve_sampling(recorded, {}, so, first_clip);
  EXPECT_EQ(so.temperature, 0.8);
  EXPECT_EQ(so.cfg_scale, 1.5);
  EXPECT_EQ(first_clip, 1);
  so.temperature = 1.3;
  resolve_sampling(recorded, {false, false, true}, so, first_clip);
  EXPECT_EQ(so.temperature, 1.3);
  resolve_sampling(b.info, {}, so, first_clip);
  EXPECT_EQ(so.temperature, 1.3);
  j["temperature"] = 0;
  expect_error([&] { BundleInfo::from_json(j, "loong.json"); }, {"loong.json", "temperature"});
  j["temperature"] = 0.8;
  j["cfg_scale"] = 0.5;
  expect_error([&] { BundleInfo::from_json(j, "loong.json"); }, {"loong.json", "cfg_scale"});

  // Half-precision storage: float tensors are written as F16 (about half the
  // bytes) and read back as the f32 weights rounded to half.
  write_bundle(dir / "h", info, tok, text, model, false, "f16");
  for (const char* part : {"h/lm/model.safetensors", "h/tokenizer/model.safetensors"}) {
    for (const auto& t : loong::safetensors::read_header(dir / part).tensors)
      EXPECT_TRUE(t.dtype == "F16" || t.dtype[0] == 'I') << part << " " << t.name << " " << t.dtype;
    const std::string full = std::string(part).replace(0, 1, "b");
    EXPECT_LT(std::filesystem::file_size(dir / part), 0.6 * std::filesystem::file_size(dir / full)) << part;
  }
  auto h = load_bundle(dir / "h");
  EXPECT_EQ(h.lm->output->weight.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(h.lm->output->weight, model->output->weight.to(torch::kHalf).to(torch::kFloat)));
  EXPECT_FALSE(torch::equal(h.lm->output->weight, model->output->weight)) << "the weights were stored at full precision";
  expect_error([&] { write_bundle(dir / "h8", info, tok, text, model, false, "f8"); }, {"--dtype", "f8"});
  EXPECT_FALSE(std::filesystem::exists(dir / "h8"));

  lm::Llama wrong(micro_lm(32));
  expect_error([&] { write_bundle(dir / "c", info, tok, text, wrong); }, {"32 video codes", "64"});
  auto grid = micro_lm();
  grid.rope = "3d", grid.rope_rows = 4, grid.rope_cols = 4;
  expect_error([&] { write_bundle(dir / "c", info, tok, text, lm::Llama(grid)); }, {"4 x 4 latent grid", "2 x 2"});
  info.clip_frames = 65 * 4 + 1;  // 66 latent frames x 4 codes > 160 positions
  expect_error([&] { write_bundle(dir / "c", info, tok, text, model); }, {"max_seq_len"});
  expect_error([&] { load_bundle(dir / "nothing"); }, {"nothing", "no such model folder"});
  std::filesystem::remove(dir / "b/loong.json");
  expect_error([&] { load_bundle(dir / "b"); }, {"loong.json"});
}

// The repository's default model (issue 7): found without --model, within the
// 40 MB limit, stored as f16, and a whole bundle that loads.
TEST(Gen, TheDefaultModelShipsAndLoads) {
  const char* env = std::getenv("LOONG_MODEL");
  const std::string saved = env ? env : "";
  ::unsetenv("LOONG_MODEL");
  std::vector<std::string> searched;
  const auto dir = default_model_dir(&searched);
  if (!saved.empty()) ::setenv("LOONG_MODEL", saved.c_str(), 1);
  ASSERT_FALSE(dir.empty()) << "no models/default next to the build or in the source tree";
  EXPECT_EQ(std::filesystem::path(dir).filename(), "default");
  uintmax_t bytes = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) bytes += e.file_size();
  EXPECT_LE(bytes, 40u * 1000 * 1000) << dir;
  for (const auto& t : loong::safetensors::read_header(dir + "/lm/model.safetensors").tensors)
    EXPECT_TRUE(t.dtype == "F16" || t.dtype[0] == 'I') << t.name << " " << t.dtype;
  auto b = load_bundle(dir);
  EXPECT_GE(b.info.cfg_scale, 1);  // its own guidance scale is recorded (docs/results.md)
  EXPECT_EQ(b.info.clip_frames, 65);
  EXPECT_EQ(b.tokenizer->config.image_size, 64);
  EXPECT_TRUE(std::filesystem::exists(b.text_dir + "/text.model"));
}

TEST(Gen, LearnedSuperResolutionBeatsBicubicAndRoundTrips) {
  TempDir dir;
  torch::manual_seed(9);
  auto frames = torch::cat({loong::test::natural_clip(10, 64, 64, 1), loong::test::natural_clip(4, 64, 64, 2)});
  SrConfig c;
  c.scale = 2;
  c.channels = 16;
  c.layers = 2;
  SrNet net(c);
  SrTrainOptions o;
  o.steps = 150;
  o.batch = 8;
  o.crop = 16;
  int calls = 0;
  o.on_step = [&](int, double loss) {
    ++calls;
    EXPECT_TRUE(std::isfinite(loss));
  };
  auto r = train_sr(net, frames, 4, o);
  EXPECT_EQ(calls, 150);
  EXPECT_GT(r.psnr_sr, r.psnr_bicubic + 0.3) << "sr " << r.psnr_sr << " bicubic " << r.psnr_bicubic;

  save_sr(dir / "sr", net);
  int factor = 0;
  auto up = load_upscaler(dir / "sr", torch::kCPU, &factor);
  EXPECT_EQ(factor, 2);
  auto small = frames.narrow(0, 0, 2).narrow(1, 0, 32).narrow(2, 0, 32).contiguous();
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(up(small), unit_to_frames(net->forward(frames_to_unit(small)))));
  expect_error([&] { train_sr(net, frames.narrow(1, 0, 63), 2, o); }, {"multiple of the scale"});
}

TEST(Gen, TorchScriptUpscalers) {
  TempDir dir;
  {
    torch::jit::Module m("Nearest3");
    m.define(R"(
def forward(self, x):
    return torch.repeat_interleave(torch.repeat_interleave(x, 3, 2), 3, 3)
)");
    m.save(dir / "up3.pt");
    torch::jit::Module bad("Bad");
    bad.define(R"(
def forward(self, x):
    return x[:, 0:1]
)");
    bad.save(dir / "bad.pt");
  }
  int factor = 0;
  auto up = load_upscaler(dir / "up3.pt", torch::kCPU, &factor);
  EXPECT_EQ(factor, 3);
  auto f = loong::test::natural_clip(2, 8, 8);
  auto expected = f.repeat_interleave(3, 1).repeat_interleave(3, 2);
  EXPECT_TRUE(torch::equal(up(f), expected));
  expect_error([&] { load_upscaler(dir / "bad.pt", torch::kCPU, &factor); }, {"bad.pt", "expected forward to map"});
  loong::test::write_bytes(dir / "junk.pt", "not a zip");
  expect_error([&] { load_upscaler(dir / "junk.pt", torch::kCPU, &factor); }, {"junk.pt", "not a TorchScript model"});
  expect_error([&] { load_upscaler(dir / "none.pt", torch::kCPU, &factor); }, {"none.pt", "no such file", "upscaler"});
}
