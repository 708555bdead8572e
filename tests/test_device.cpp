// The CUDA path and what it rests on. The first tests run everywhere: the
// fixed-shape decoding step a CUDA graph replays, sampling on the device,
// fused AdamW (LibTorch 2.4+) and activation checkpointing, each against the
// plain computation. The Cuda.* tests compare CUDA with the CPU and skip,
// saying why, where this build has no CUDA or no device is present.
#include <functional>
#include <map>

#include <gtest/gtest.h>

#include <torch/torch.h>

#include "fixtures.h"
#include "loong/core/torch_compat.h"
#include "loong/gen/code_sampler.h"
#include "loong/gen/sampling.h"
#include "loong/lm/model.h"
#include "loong/lm/vocab.h"
#include "loong/ops/adamw.h"
#include "loong/ops/checkpoint.h"
#include "loong/ops/device.h"
#include "loong/io/safetensors.h"
#include "loong/store/checkpoints.h"
#include "loong/tokenizer/layers.h"
#include "loong/tokenizer/model.h"
#include "test_util.h"

using namespace loong;
using namespace loong::lm;
using loong::test::expect_error;
using loong::test::micro_lm;
using loong::test::micro_tokenizer;

namespace {

LmConfig micro(const std::string& rope) {
  auto c = micro_lm();
  if (rope == "3d") c.rope = "3d", c.rope_rows = 2, c.rope_cols = 3;
  return c;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kCPU, torch::kFloat) - b.to(torch::kCPU, torch::kFloat)).abs().max().item<double>();
}

// Prompts of different lengths (so one row is padded), text then a prefix.
std::vector<gen::ClipPrompt> clip_prompts() {
  return {{{3, 4, 5, 6}, {1, 2}}, {{7}, {9, 10}}};
}

#define SKIP_WITHOUT_CUDA()                                                                            \
  if (!cuda_device_present())                                                                          \
  GTEST_SKIP() << (LOONG_WITH_CUDA ? "no CUDA device present" : "this build has no CUDA (LibTorch " + \
                                                                    std::to_string(TORCH_VERSION_MAJOR) + "." + \
                                                                    std::to_string(TORCH_VERSION_MINOR) + " for the CPU)")

}  // namespace

TEST(StaticDecode, AtPositionMatchesTheDecodeStep) {
  // What a CUDA graph replays: every shape fixed, the position a tensor, keys
  // read over a span past it and masked. It must give what the step gives.
  for (const std::string rope : {"1d", "3d"}) {
    SCOPED_TRACE("rope " + rope);
    torch::manual_seed(5);
    c10::InferenceMode guard;
    auto c = micro(rope);
    Llama m(c);
    auto prompt = torch::randint(0, c.vocab_size(), {2, 7});
    prompt.select(1, 5).fill_(Vocab(c.text_vocab, c.video_vocab).sov());
    prompt.select(1, 6).fill_(c.text_vocab + 1);
    KvCache ref(c, 2, 40, torch::kCPU), fixed(c, 2, 40, torch::kCPU);
    ref.valid = torch::ones({2, 40}, torch::kBool);
    ref.valid[1].narrow(0, 0, 3).fill_(false);  // row 1 left-padded by 3
    fixed.valid = ref.valid.clone();
    m->hidden(prompt, &ref, 0);
    m->hidden(prompt, &fixed, 0);
    const DecodeStep step(m, false);
    auto pos = torch::full({1}, 7, torch::kLong);
    for (int64_t t = 7; t < 40; ++t) {
      auto ids = torch::randint(c.text_vocab, c.vocab_size(), {2});
      auto a = step(ids, ref);
      // Spans: just past the position, a round 32, the whole cache.
      const int64_t span = t % 3 == 0 ? t + 1 : (t % 3 == 1 ? std::max<int64_t>(32, t + 1) : 40);
      auto b = step.at_position(ids, pos, fixed, span);
      EXPECT_LT(max_diff(a, b), 1e-5) << "position " << t << ", span " << span;
      pos.add_(1);
    }
    for (int l = 0; l < c.n_layers; ++l) {
      EXPECT_LT(max_diff(ref.k[l], fixed.k[l]), 1e-5);
      EXPECT_LT(max_diff(ref.v[l], fixed.v[l]), 1e-5);
    }
    expect_error([&] { step.at_position(torch::zeros({2}, torch::kLong), pos, fixed, 41); }, {"outside the cache"});
  }
}

TEST(StaticDecode, SamplerGivesTheGreedyCodesOfTheCpuWay) {
  // Greedy choices do not depend on the generator, so the static way (what
  // CUDA runs) must reproduce the CPU way's codes exactly, guidance and a
  // padded row included, clip after clip (buffers and cache reused).
  for (const std::string rope : {"1d", "3d"}) {
    SCOPED_TRACE("rope " + rope);
    torch::manual_seed(2);
    auto c = micro(rope);
    Llama m(c);
    gen::SamplingOptions o;
    o.top_k = 1;
    o.cfg_scale = 3;
    gen::CodeSampler cpu(m, Vocab(c.text_vocab, c.video_vocab), o), fixed(m, Vocab(c.text_vocab, c.video_vocab), o);
    fixed.set_static_decode(true);
    for (int clip = 0; clip < 2; ++clip) {
      auto a = cpu.generate(clip_prompts(), 30);
      int64_t steps = 0;
      auto b = fixed.generate(clip_prompts(), 30, [&](int64_t) { ++steps; });
      EXPECT_TRUE(torch::equal(a, b)) << "clip " << clip;
      EXPECT_EQ(steps, 30);
      EXPECT_EQ(b.device().type(), torch::kCPU);
      fixed.set_cfg_scale(1.5), cpu.set_cfg_scale(1.5);  // the second clip: another guidance scale
    }
    EXPECT_EQ(fixed.graphs_captured(), 0);  // no graphs on the CPU
  }
}

TEST(StaticDecode, SamplingOnTheDeviceFollowsTheProbabilities) {
  // The exponential race must draw code i with probability softmax(l / t)_i
  // among the top k, and never outside them (top-k, then top-p).
  const auto logits = torch::tensor({2.0, 1.0, 0.0, -1.0, 0.5}, torch::kFloat);
  const int64_t N = 40000;
  auto batch = logits.view({1, 5}).expand({N, 5}).contiguous();
  gen::SamplingOptions o;
  o.temperature = 0.8;
  o.top_k = 5;
  auto gen = device_generator(torch::kCPU, 11);
  auto codes = gen::sample_codes_on_device(batch, o, gen);
  ASSERT_EQ(codes.sizes(), torch::IntArrayRef({N}));
  auto expected = torch::softmax(logits / 0.8, 0);
  auto freq = torch::bincount(codes, {}, 5).to(torch::kDouble) / N;
  for (int i = 0; i < 5; ++i)
    EXPECT_NEAR(freq[i].item<double>(), expected[i].item<double>(), 0.01) << "code " << i;
  o.top_k = 2;  // codes 0 and 1 only, in proportion e^(2 / t) : e^(1 / t)
  codes = gen::sample_codes_on_device(batch, o, gen);
  freq = torch::bincount(codes, {}, 5).to(torch::kDouble) / N;
  EXPECT_EQ(freq[2].item<double>() + freq[3].item<double>() + freq[4].item<double>(), 0);
  EXPECT_NEAR(freq[0].item<double>(), 1 / (1 + std::exp((1.0 - 2.0) / 0.8)), 0.01);
  o.top_k = 5, o.top_p = 0.5;  // the first code alone holds more than half the mass
  codes = gen::sample_codes_on_device(batch, o, gen);
  EXPECT_TRUE(codes.eq(0).all().item<bool>());
  o.top_k = 1;
  EXPECT_TRUE(gen::sample_codes_on_device(batch, o, gen).eq(0).all().item<bool>());
}

namespace {
// Two copies of the same parameters with the same gradients for `steps`
// AdamW steps (decay on one group, none on the other), one plain and one
// fused; returns the largest difference of the weights.
double fused_against_plain(torch::Device device, int steps, bool save_and_reload) {
  torch::manual_seed(4);
  std::vector<torch::Tensor> a, b;
  for (auto shape : {std::vector<int64_t>{8, 5}, {5}, {3, 3, 2}}) {
    auto w = torch::randn(shape).to(device);
    a.push_back(w.clone().requires_grad_(true));
    b.push_back(w.clone().requires_grad_(true));
  }
  auto make = [](std::vector<torch::Tensor> p) {
    auto o = torch::optim::AdamWOptions(3e-3).betas({0.9, 0.95}).weight_decay(0.1);
    auto o0 = o;
    o0.weight_decay(0);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(std::vector<torch::Tensor>{p[0], p[2]}, std::make_unique<torch::optim::AdamWOptions>(o));
    groups.emplace_back(std::vector<torch::Tensor>{p[1]}, std::make_unique<torch::optim::AdamWOptions>(o0));
    return std::make_unique<torch::optim::AdamW>(groups);
  };
  auto plain = make(a), fused = make(b);
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < a.size(); ++i) {
      auto g = torch::randn(a[i].sizes()).to(device);
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    adamw_step(*plain, false);
    adamw_step(*fused, true);
    if (save_and_reload && s == steps / 2) {  // the fused state is AdamW's: save it, load it into a plain one
      loong::test::TempDir dir;
      store::save_optimizer(dir.path().string(), "opt", *fused);
      fused = make(b);
      store::load_optimizer(*fused, dir.path().string(), "opt");
    }
  }
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, max_diff(a[i], b[i]));
  return worst;
}
}  // namespace

TEST(FusedAdamW, MatchesAdamWAndSharesItsState) {
  if (!fused_adamw_available())
    GTEST_SKIP() << "LibTorch " << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR << " has no fused AdamW (2.4+)";
  EXPECT_LT(fused_against_plain(torch::kCPU, 6, false), 1e-5);
  EXPECT_LT(fused_against_plain(torch::kCPU, 6, true), 1e-5);
}

// Optimizer state is a safetensors file read tensor by tensor (issue 37: a
// damaged LibTorch archive crashed the reader): the same steps after a round
// trip, and a clear error for every kind of damage.
TEST(OptimizerState, RoundTripsAndRefusesDamage) {
  namespace fs = std::filesystem;
  loong::test::TempDir dir;
  torch::manual_seed(3);
  auto make = [](std::vector<torch::Tensor> p, bool amsgrad) {
    return std::make_unique<torch::optim::AdamW>(p, torch::optim::AdamWOptions(1e-2).amsgrad(amsgrad));
  };
  for (bool amsgrad : {false, true}) {
    std::vector<torch::Tensor> a = {torch::randn({3, 4}).requires_grad_(), torch::randn({5}).requires_grad_(),
                                    torch::randn({2}).requires_grad_()};
    std::vector<torch::Tensor> b;
    for (auto& t : a) b.push_back(t.detach().clone().requires_grad_());
    auto oa = make(a, amsgrad), ob = make(b, amsgrad);
    auto step = [](torch::optim::AdamW& o, std::vector<torch::Tensor>& p, int seed, bool all) {
      torch::manual_seed(seed);
      for (size_t i = 0; i < p.size(); ++i)
        p[i].mutable_grad() = (all || i < 2) ? torch::randn(p[i].sizes()) : torch::Tensor();  // the last may have no state
      o.step();
    };
    for (int s = 0; s < 3; ++s) step(*oa, a, s, false), step(*ob, b, s, false);
    store::save_optimizer(dir.path().string(), "opt", *ob);
    ob = make(b, amsgrad);
    store::load_optimizer(*ob, dir.path().string(), "opt");
    for (int s = 3; s < 6; ++s) step(*oa, a, s, true), step(*ob, b, s, true);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << i;
  }
  // Damage: each edit of the saved tensors is named.
  std::vector<torch::Tensor> p = {torch::randn({3, 4}).requires_grad_()};
  auto o = make(p, false);
  p[0].mutable_grad() = torch::randn({3, 4});
  o->step();
  store::save_optimizer(dir.path().string(), "good", *o);
  const auto good = safetensors::load(dir / "good.safetensors");
  auto damaged = [&](const std::function<void(std::map<std::string, torch::Tensor>&)>& edit,
                     std::map<std::string, std::string> meta = {{"format", "loong-adamw"}}) {
    auto t = good;
    edit(t);
    std::vector<std::pair<std::string, torch::Tensor>> v(t.begin(), t.end());
    safetensors::save(dir / "bad.safetensors", v, meta);
    auto fresh = make(p, false);
    store::load_optimizer(*fresh, dir.path().string(), "bad");
  };
  expect_error([&] { damaged([](auto& t) { t["0.0.exp_avg"] = torch::zeros({4, 3}); }); },
               {"bad.safetensors", "0.0.exp_avg", "[4, 3]", "[3, 4]"});
  expect_error([&] { damaged([](auto& t) { t["0.0.exp_avg"] = torch::zeros({3, 4}, torch::kLong); }); }, {"0.0.exp_avg"});
  expect_error([&] { damaged([](auto& t) { t.erase("0.0.exp_avg_sq"); }); }, {"only part of its optimizer state"});
  expect_error([&] { damaged([](auto& t) { t["0.0.step"] = torch::tensor(-1, torch::kLong); }); }, {"0.0.step"});
  expect_error([&] { damaged([](auto& t) { t["0.0.step"] = torch::tensor({1, 2}, torch::kLong); }); }, {"0.0.step"});
  expect_error([&] { damaged([](auto& t) { t["0.1.exp_avg"] = torch::zeros({1}); }); }, {"unexpected tensor '0.1.exp_avg'"});
  expect_error([&] { damaged([](auto&) {}, {{"format", "pt"}}); }, {"loong-adamw"});
  // A checkpoint of an older loong: its LibTorch archive is named, not read.
  loong::test::write_bytes(dir / "old.pt", "PK\x03\x04 a zip that is never opened");
  expect_error([&] { store::load_optimizer(*o, dir.path().string(), "old"); }, {"old.pt", "older loong", "--init"});
  EXPECT_TRUE(store::has_optimizer(dir.path().string(), "old"));
  EXPECT_FALSE(store::has_optimizer(dir.path().string(), "none"));
}

TEST(Checkpoint, StepMatchesItsFolder) {
  EXPECT_EQ(store::checkpoint_step({{"step", 12}}, "t.json", "run/checkpoints/step-00000012"), 12);
  EXPECT_EQ(store::checkpoint_step({{"step", 0}}, "t.json", "somewhere"), 0);
  expect_error([] { store::checkpoint_step({{"step", -5}}, "t.json", "somewhere"); }, {"t.json", "'step'", "-5"});
  expect_error([] { store::checkpoint_step({{"step", 11}}, "t.json", "run/checkpoints/step-00000012"); },
               {"t.json", "step-00000012"});
  expect_error([] { store::checkpoint_step({{"step", "12"}}, "t.json", "x"); }, {"t.json", "step"});
}

TEST(Checkpoint, TrainingLogIsCutBackToTheCheckpoint) {
  loong::test::TempDir dir;
  std::string log;
  for (int s = 0; s < 6; ++s) log += "{\"step\": " + std::to_string(s) + ", \"loss\": " + std::to_string(s) + "}\n";
  loong::test::write_bytes(dir / "log.jsonl", log + "{\"step\": 6, \"lo");  // a torn last line
  auto kept = store::cut_training_log(dir.path(), 4);  // resumed at step 4: steps 4, 5 are trained again
  ASSERT_EQ(kept.size(), 4u);
  EXPECT_EQ(kept.back()["step"], 3);
  EXPECT_EQ(loong::test::read_bytes(dir / "log.jsonl"), log.substr(0, log.find("{\"step\": 4")));
  EXPECT_TRUE(store::cut_training_log(dir.path(), 0).empty());  // a new run in a killed run's folder
  EXPECT_EQ(loong::test::read_bytes(dir / "log.jsonl"), "");
  EXPECT_TRUE(store::cut_training_log(dir / "none", 3).empty());
}

TEST(ActivationCheckpointing, GivesTheSameGradients) {
  torch::manual_seed(6);
  auto c = micro("1d");
  Llama plain(c), ckpt(c);
  {
    torch::NoGradGuard ng;
    auto src = plain->parameters(), dst = ckpt->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  ckpt->checkpoint_blocks = true;
  auto tokens = torch::randint(0, c.vocab_size(), {2, 40});
  for (auto* m : {&plain, &ckpt}) {
    (*m)->train();
    auto logits = (*m)->forward(tokens);
    torch::nn::functional::cross_entropy(logits.view({-1, c.vocab_size()}), tokens.view({-1})).backward();
  }
  auto pa = plain->parameters(), pb = ckpt->parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    ASSERT_TRUE(pb[i].grad().defined()) << "parameter " << i;
    EXPECT_LT(max_diff(pa[i].grad(), pb[i].grad()), 1e-6) << "parameter " << i;
  }

  // The tokenizer's residual blocks, input gradient included.
  tokenizer::ResBlock3d r1(4, 6, tokenizer::NormKind::Group), r2(4, 6, tokenizer::NormKind::Group);
  {
    torch::NoGradGuard ng;
    auto src = r1->parameters(), dst = r2->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  r2->checkpoint = true;
  auto x1 = torch::randn({1, 4, 3, 6, 6}).requires_grad_(true), x2 = x1.detach().clone().requires_grad_(true);
  r1->forward(x1).square().sum().backward();
  r2->forward(x2).square().sum().backward();
  EXPECT_LT(max_diff(x1.grad(), x2.grad()), 1e-5);
  auto ra = r1->parameters(), rb = r2->parameters();
  for (size_t i = 0; i < ra.size(); ++i) EXPECT_LT(max_diff(ra[i].grad(), rb[i].grad()), 1e-5) << "parameter " << i;
}

TEST(Device, GraphsRefuseClearlyWithoutCuda) {
  if (cuda_graphs_available()) GTEST_SKIP() << "this build and machine have CUDA graphs";
  CudaGraph g;
  expect_error([&] { g.capture([] {}, {}); }, {"CUDA graphs"});
  synchronize(torch::kCPU);  // a no-op on the CPU
}

// ---------------------------------------------------------------------------
// CUDA against the CPU (skipped without a device).
// ---------------------------------------------------------------------------

TEST(Cuda, LanguageModelLogitsMatchTheCpu) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(7);
  c10::InferenceMode guard;
  for (const std::string rope : {"1d", "3d"}) {
    auto c = micro(rope);
    Llama m(c);
    auto tokens = torch::randint(0, c.vocab_size(), {2, 50});
    auto cpu = m->forward(tokens);
    m->to(torch::kCUDA);
    EXPECT_LT(max_diff(cpu, m->forward(tokens.to(torch::kCUDA))), 1e-4) << rope << " f32";
    m->to(torch::kBFloat16);
    const double scale = cpu.abs().max().item<double>();
    EXPECT_LT(max_diff(cpu, m->forward(tokens.to(torch::kCUDA))), 0.05 * scale) << rope << " bf16";
  }
}

TEST(Cuda, GraphDecodingGivesTheCpuCodes) {
  SKIP_WITHOUT_CUDA();
  if (!cuda_graphs_available()) GTEST_SKIP() << "LibTorch below 2.6: no CUDA graphs in this build";
  torch::manual_seed(8);
  auto c = micro("3d");
  c.max_seq_len = 700;  // past one graph span (512 positions)
  Llama cpu_model(c), cuda_model(c);
  {
    torch::NoGradGuard ng;
    // Logits far apart, so float rounding on two devices does not flip a
    // greedy choice (one flip changes every later code).
    cpu_model->output->weight.mul_(50);
    auto src = cpu_model->parameters(), dst = cuda_model->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  cuda_model->to(torch::kCUDA);
  gen::SamplingOptions o;
  o.top_k = 1;
  o.cfg_scale = 2;
  gen::CodeSampler cpu(cpu_model, Vocab(c.text_vocab, c.video_vocab), o);
  gen::CodeSampler cuda(cuda_model, Vocab(c.text_vocab, c.video_vocab), o);
  for (int clip = 0; clip < 2; ++clip) {
    auto a = cpu.generate(clip_prompts(), 600);
    auto b = cuda.generate(clip_prompts(), 600);
    // f32 on two devices: the same greedy codes but for near ties.
    EXPECT_GT(a.eq(b).to(torch::kDouble).mean().item<double>(), 0.98) << "clip " << clip;
  }
  EXPECT_GE(cuda.graphs_captured(), 2);
  EXPECT_GT(cuda.graph_replays(), 1000);
  // Sampling (top-k) from the device generator: reproducible with the seed.
  o.top_k = 20;
  gen::CodeSampler s1(cuda_model, Vocab(c.text_vocab, c.video_vocab), o), s2(cuda_model, Vocab(c.text_vocab, c.video_vocab), o);
  EXPECT_TRUE(torch::equal(s1.generate(clip_prompts(), 100), s2.generate(clip_prompts(), 100)));
  // Replays advance the generator as the eager steps do: the same draws.
  gen::CodeSampler graphed(cuda_model, Vocab(c.text_vocab, c.video_vocab), o),
      eager(cuda_model, Vocab(c.text_vocab, c.video_vocab), o);
  eager.set_cuda_graphs(false);
  EXPECT_TRUE(torch::equal(graphed.generate(clip_prompts(), 600), eager.generate(clip_prompts(), 600)));
  EXPECT_GT(graphed.graph_replays(), 500);
  EXPECT_EQ(eager.graph_replays(), 0);
}

TEST(Cuda, TokenizerCodesAndReconstructionsMatchTheCpu) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(9);
  c10::InferenceMode guard;
  tokenizer::VideoTokenizer t(micro_tokenizer());
  t->eval();
  auto video = torch::rand({2, 3, 9, 16, 16}) * 2 - 1;
  auto codes = t->encode(video);
  auto recon = t->decode(codes);
  t->to(torch::kCUDA);
  auto gpu_codes = t->encode(video.to(torch::kCUDA)).to(torch::kCPU);
  EXPECT_GT(codes.eq(gpu_codes).to(torch::kDouble).mean().item<double>(), 0.99);
  EXPECT_LT(max_diff(recon, t->decode(codes.to(torch::kCUDA))), 1e-3);
  CudaAutocast bf16(true);  // as generation runs it
  auto bf_codes = t->encode(video.to(torch::kCUDA)).to(torch::kCPU);
  EXPECT_GT(codes.eq(bf_codes).to(torch::kDouble).mean().item<double>(), 0.9);
  EXPECT_LT(max_diff(recon, t->decode(codes.to(torch::kCUDA))), 0.1);
}

TEST(Cuda, OneTrainingStepMatchesTheCpu) {
  SKIP_WITHOUT_CUDA();
  auto c = micro("1d");
  auto tokens = torch::randint(0, c.vocab_size(), {2, 60});
  // The CPU; CUDA in f32 with recomputed blocks and fused AdamW; the same
  // under bf16 autocast, as the trainers run on CUDA.
  std::vector<double> losses[3];
  for (int run = 0; run < 3; ++run) {
    torch::manual_seed(10);
    Llama m(c);
    const torch::Device device = run ? torch::kCUDA : torch::kCPU;
    m->to(device);
    m->train();
    m->checkpoint_blocks = run > 0;
    torch::optim::AdamW opt(m->parameters(), torch::optim::AdamWOptions(1e-2));
    for (int s = 0; s < 2; ++s) {
      opt.zero_grad();
      CudaAutocast amp(run == 2);
      auto logits = m->forward(tokens.to(device));
      auto loss = torch::nn::functional::cross_entropy(logits.view({-1, c.vocab_size()}).to(torch::kFloat),
                                                       tokens.to(device).view({-1}));
      loss.backward();
      losses[run].push_back(loss.item<double>());
      adamw_step(opt, run > 0);
    }
  }
  for (int s = 0; s < 2; ++s) {
    EXPECT_NEAR(losses[0][s], losses[1][s], 1e-4) << "step " << s;
    EXPECT_NEAR(losses[0][s], losses[2][s], 2e-2) << "step " << s << ", bf16 autocast";
  }
  EXPECT_LT(fused_against_plain(torch::kCUDA, 6, true), 1e-5);
}
