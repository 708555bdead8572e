// Training throughput of the language model: loong's trainer (batches from
// memory-mapped shards, Eq. 2 weights, per-range losses, clipping, AdamW)
// against a plain LibTorch training loop of the same LLaMA written here, the
// way one would write it from the paper: its own modules, rotary tables
// built in every forward, a masked softmax attention, cross-entropy over
// every position. Both run the same shapes, interleaved step by step; the
// result is the ratio of median tokens/s (loong / reference).
// Then the attention alone, forward and backward of one sample at the step's
// sequence length: the blocked causal kernel loong uses for long sequences on
// LibTorch 1.13 (ops/attention.h) against the dense masked softmax.
//
//   bench_lm_train [--frames 17] [--batch 16] [--steps 12] [--threads 0] [--grid 8]
// --grid 16 gives a tokenizer's 16 x 16 latent frame (4x in space at 64 x 64):
// 4,367 positions a 65-frame sample.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include "bench_common.h"
#include "loong/ops/attention.h"
#include "loong/core/runtime.h"
#include "loong/lm/shards.h"
#include "loong/lm/trainer.h"

namespace fs = std::filesystem;
using namespace loong;

namespace {

// --- the reference: a plain LLaMA and loop -------------------------------
struct PlainBlock : torch::nn::Module {
  PlainBlock(int d, int h, int ffn) : heads(h) {
    wq = register_module("wq", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
    wk = register_module("wk", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
    wv = register_module("wv", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
    wo = register_module("wo", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
    w1 = register_module("w1", torch::nn::Linear(torch::nn::LinearOptions(d, ffn).bias(false)));
    w2 = register_module("w2", torch::nn::Linear(torch::nn::LinearOptions(ffn, d).bias(false)));
    w3 = register_module("w3", torch::nn::Linear(torch::nn::LinearOptions(d, ffn).bias(false)));
    n1 = register_parameter("n1", torch::ones({d}));
    n2 = register_parameter("n2", torch::ones({d}));
  }
  static torch::Tensor rms(const torch::Tensor& x, const torch::Tensor& w) {
    return x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-5) * w;
  }
  static torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
    auto x1 = x.slice(-1, 0, x.size(-1), 2), x2 = x.slice(-1, 1, x.size(-1), 2);
    return torch::stack({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1).flatten(-2);
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask) {
    const auto B = x.size(0), T = x.size(1), D = x.size(2), hd = D / heads;
    auto h = rms(x, n1);
    auto q = rope(wq(h).view({B, T, heads, hd}), cos, sin).transpose(1, 2);
    auto k = rope(wk(h).view({B, T, heads, hd}), cos, sin).transpose(1, 2);
    auto v = wv(h).view({B, T, heads, hd}).transpose(1, 2);
    auto att = torch::softmax((torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(hd))).masked_fill(mask, -INFINITY), -1);
    auto y = x + wo(torch::matmul(att, v).transpose(1, 2).reshape({B, T, D}));
    auto g = rms(y, n2);
    return y + w2(torch::silu(w1(g)) * w3(g));
  }
  int heads;
  torch::nn::Linear wq{nullptr}, wk{nullptr}, wv{nullptr}, wo{nullptr}, w1{nullptr}, w2{nullptr}, w3{nullptr};
  torch::Tensor n1, n2;
};

struct PlainLlama : torch::nn::Module {
  explicit PlainLlama(const lm::LmConfig& c) : cfg(c) {
    emb = register_module("emb", torch::nn::Embedding(c.vocab_size(), c.dim));
    for (int i = 0; i < c.n_layers; ++i)
      blocks.push_back(register_module("b" + std::to_string(i), std::make_shared<PlainBlock>(c.dim, c.n_heads, c.ffn_dim)));
    norm = register_parameter("norm", torch::ones({c.dim}));
    out = register_module("out", torch::nn::Linear(torch::nn::LinearOptions(c.dim, c.vocab_size()).bias(false)));
  }
  torch::Tensor forward(const torch::Tensor& tokens) {
    const int64_t T = tokens.size(1), hd = cfg.dim / cfg.n_heads;
    auto freqs = torch::pow(cfg.rope_theta, -torch::arange(0, hd, 2, torch::kFloat) / hd);
    auto ang = torch::outer(torch::arange(T, torch::kFloat), freqs).view({T, 1, hd / 2});
    auto cos = ang.cos(), sin = ang.sin();
    auto mask = torch::ones({T, T}, torch::kBool).triu(1);
    auto x = emb(tokens);
    for (auto& b : blocks) x = b->forward(x, cos, sin, mask);
    return out(PlainBlock::rms(x, norm));
  }
  lm::LmConfig cfg;
  torch::nn::Embedding emb{nullptr};
  std::vector<std::shared_ptr<PlainBlock>> blocks;
  torch::Tensor norm;
  torch::nn::Linear out{nullptr};
};

}  // namespace

int main(int argc, char** argv) {
  int frames = 17, batch = 16, steps = 12, threads = 0, grid = 8;
  CLI::App app{"Language-model training throughput: loong's trainer against a plain LibTorch loop"};
  app.add_option("--frames", frames, "Frames per sample")->check(CLI::IsMember({1, 17, 65}));
  app.add_option("--batch", batch, "Samples per step")->check(CLI::Range(1, 1000000));
  app.add_option("--steps", steps, "Timed steps per loop")->check(CLI::Range(1, 1000000));
  app.add_option("--threads", threads, "Threads (0 = the machine's cores)")->check(CLI::Range(0, 4096));
  app.add_option("--grid", grid, "Latent cells per side of a frame (8: 64x64 frames at 8x in space; 16: at 4x)")
      ->check(CLI::Range(1, 64));
  CLI11_PARSE(app, argc, argv);
  const int nthreads = init_threads(threads);
  const int latent = (frames - 1) / 4 + 1, text_len = 12;

  // Shards like the tiny run's: the tiny preset's vocabulary, fixed caption length (no padding).
  const fs::path dir = fs::temp_directory_path() / ("loong_bench_lm_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  lm::LmConfig mc = lm::LmConfig::preset("tiny");
  bench::write_random_shards(dir.string(), mc, latent, grid, text_len);
  auto cfg = lm::LmTrainConfig::preset("tiny");
  cfg.data = dir.string();
  cfg.caption_dropout = 0;
  cfg.stages = {{"bench", frames, 0.0, 1000, batch, 1, 1e-3, 0, 1.0, 1.0}};
  cfg.checkpoint_every = cfg.plot_every = 0;
  lm::LmTrainerOptions o;
  o.run_dir = (dir / "run").string();
  lm::LmTrainer trainer(cfg, o);

  torch::manual_seed(0);
  PlainLlama plain(trainer.config().model);
  torch::optim::AdamW opt(plain.parameters(), torch::optim::AdamWOptions(1e-3).betas({0.9, 0.95}).weight_decay(0.1));
  const int64_t L = text_len + 3 + int64_t(latent) * grid * grid;  // <sot> text <eot> <sov> video <eov>, minus one
  const int64_t V = trainer.config().model.vocab_size();
  auto x = torch::randint(V, {batch, L}, torch::kLong), y = torch::randint(V, {batch, L}, torch::kLong);
  auto plain_step = [&] {
    auto logits = plain.forward(x);
    auto loss = torch::nn::functional::cross_entropy(logits.view({-1, V}), y.view({-1}));
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(plain.parameters(), 1.0);
    opt.step();
  };
  std::vector<double> ours, ref;
  int64_t tokens = 0;
  for (int i = 0; i < steps + 2; ++i) {  // two warm-up steps each, then interleaved
    nlohmann::json rec;
    const double a = bench::time_ms([&] { rec = trainer.step(); });
    const double b = bench::time_ms(plain_step);
    tokens = rec["tokens"].get<int64_t>();
    if (i >= 2) ours.push_back(a), ref.push_back(b);
  }
  const double ours_ms = bench::median(ours), ref_ms = bench::median(ref);

  // The attention alone: one sample, the model's heads, forward and backward.
  const auto& model = trainer.config().model;
  auto make = [&] { return torch::randn({1, model.n_heads, L, model.head_dim()}).requires_grad_(true); };
  auto aq = make(), ak = make(), av = make();
  auto upstream = torch::randn({1, model.n_heads, L, model.head_dim()});
  auto dense = [&] {
    auto sc = torch::matmul(aq * (1.0 / std::sqrt(double(model.head_dim()))), ak.transpose(-2, -1));
    sc.masked_fill_(torch::ones({L, L}, torch::kBool).triu(1), -INFINITY);
    torch::autograd::grad({torch::matmul(torch::softmax(sc, -1), av)}, {aq, ak, av}, {upstream});
  };
  auto blocked = [&] { torch::autograd::grad({blocked_causal_attention(aq, ak, av)}, {aq, ak, av}, {upstream}); };
  std::vector<double> att_dense, att_blocked;
  for (int i = 0; i < steps + 1; ++i) {
    const double a = bench::time_ms(blocked), b = bench::time_ms(dense);
    if (i >= 1) att_blocked.push_back(a), att_dense.push_back(b);
  }
  const double blocked_ms = bench::median(att_blocked), dense_ms = bench::median(att_dense);
  nlohmann::json out = {{"bench", "lm_train"},
                        {"preset", "tiny"},
                        {"parameters", trainer.config().model.parameter_count()},
                        {"frames", frames},
                        {"grid", grid},
                        {"batch", batch},
                        {"sequence", L},
                        {"tokens_per_step", tokens},
                        {"threads", nthreads},
                        {"steps", steps},
                        {"loong_ms", ours_ms},
                        {"reference_ms", ref_ms},
                        {"loong_tokens_per_s", tokens / (ours_ms / 1000)},
                        {"reference_tokens_per_s", double(batch * L) / (ref_ms / 1000)},
                        {"ratio", (tokens / ours_ms) / (double(batch * L) / ref_ms)},
                        {"attention_blocked_ms", blocked_ms},
                        {"attention_dense_ms", dense_ms},
                        {"attention_ratio", dense_ms / blocked_ms}};
  std::printf("%s\n", out.dump().c_str());
  fs::remove_all(dir);
  return 0;
}
