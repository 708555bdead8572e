// The figures of the CUDA path (scripts/gpu_check.sh runs this on a GPU; the
// same script rehearses it on the CPU with tiny shapes). Random weights: speed
// does not depend on what the weights learned. Timings wait for the device
// (ops/device.h synchronize) and are medians over --reps.
//
//  decode     ms per decoding step, batch 2 (conditional + unconditional), at
//             each context of --contexts, for each --lm preset: the sampler's
//             static step replayed from CUDA graphs against the same step
//             launched eagerly (the baseline, same run); against the bound
//             weight bytes / --bandwidth (and weights + KV cache read).
//  minute     one minute of video end to end (LongVideoGenerator: text ->
//             clips -> re-encoding -> pixels) with the first --lm preset and
//             the --tokenizer preset: seconds, codes per branch, codes/s.
//  train      training tokens/s and MFU (6 N tokens/s over --peak-tflops) of
//             the first --lm preset on --train-seq-token sequences: bf16
//             autocast on CUDA, SDPA attention, AdamW fused and not (the
//             baseline), activation checkpointing off and on.
//  tokenizer  encode and decode frames/s of the --tokenizer preset at its
//             size, bf16 autocast on CUDA, 17-frame clips.
//
//   bench_device [--device cuda] [--what decode,minute,train,tokenizer] [--lm 700M,3B] [--tokenizer paper]
//                [--contexts 512,2048,4352] [--steps 64] [--reps 3] [--minute-seconds 60]
//                [--train-seq 4352] [--train-batch 4] [--tokenizer-batch 4] [--tokenizer-size 0]
//                [--bandwidth 4.8e12] [--peak-tflops 989] [--threads 0]
// For a CPU rehearsal: --device cpu --lm tiny --tokenizer tiny and small shapes.
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include "bench_common.h"
#include "loong/core/runtime.h"
#include "loong/core/torch_compat.h"
#include "loong/gen/code_sampler.h"
#include "loong/gen/long_video.h"
#include "loong/lm/config.h"
#include "loong/lm/model.h"
#include "loong/ops/adamw.h"
#include "loong/ops/device.h"
#include "loong/tokenizer/config.h"
#include "loong/tokenizer/model.h"

using namespace loong;
using nlohmann::json;

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string x; std::getline(in, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}

// Runs f, waiting for the device before and after.
template <class F>
double device_ms(torch::Device d, F&& f) {
  synchronize(d);
  return bench::time_ms([&] {
    f();
    synchronize(d);
  });
}

lm::LmConfig lm_config(const std::string& preset, int video_vocab, int64_t max_seq) {
  auto c = lm::LmConfig::preset(preset);
  c.video_vocab = video_vocab;
  c.max_seq_len = std::max<int64_t>(c.max_seq_len, max_seq);
  return c;
}

struct Opts {
  torch::Device device = torch::kCPU;
  std::vector<std::string> lm_presets;
  std::string tokenizer = "paper";
  std::vector<int64_t> contexts;
  int64_t steps = 64, reps = 3, train_seq = 4352, train_batch = 4, tokenizer_batch = 4, tokenizer_size = 0;
  double minute_seconds = 60, bandwidth = 4.8e12, peak_tflops = 989;
};

// Prompts whose video prefix puts the first decoded position at about `context`.
std::vector<gen::ClipPrompt> prompts_at(int64_t context, int V) {
  gen::ClipPrompt p;
  p.text = {5, 6, 7, 8, 9, 10, 11, 12};
  for (int64_t i = 0; i < std::max<int64_t>(0, context - 12); ++i) p.prefix.push_back(static_cast<int32_t>((i * 37) % V));
  return {p};
}

json bench_decode(const Opts& o) {
  json out = json::array();
  for (const auto& preset : o.lm_presets) {
    const int64_t longest = *std::max_element(o.contexts.begin(), o.contexts.end()) + o.steps + 16;
    auto c = lm_config(preset, 8192, longest);
    torch::manual_seed(0);
    lm::Llama m(c);
    m->to(o.device);
    if (o.device.is_cuda()) m->to(torch::kBFloat16);
    const double bytes_per = o.device.is_cuda() ? 2 : 4;
    // A step reads every weight but the embedding's other rows and the text
    // rows of the output head.
    const double weight_bytes =
        (m->parameter_count() - double(c.vocab_size()) * c.dim - double(c.text_vocab) * c.dim) * bytes_per;
    gen::SamplingOptions so;  // cfg 7.5, top-k 50: batch 2
    lm::Vocab vocab(c.text_vocab, c.video_vocab);
    for (int64_t context : o.contexts) {
      json row = {{"preset", preset}, {"parameters", m->parameter_count()}, {"context", context}, {"batch", 2}};
      for (bool graphs : {true, false}) {
        gen::CodeSampler s(m, vocab, so);
        s.set_static_decode(true);
        s.set_cuda_graphs(graphs);
        const auto prompts = prompts_at(context, c.video_vocab);
        s.generate(prompts, o.steps);  // warm-up: graphs captured, cache allocated
        std::vector<double> ms;
        for (int r = 0; r < o.reps; ++r) {
          const double before = s.timings().decode_s;
          s.generate(prompts, o.steps);
          ms.push_back((s.timings().decode_s - before) * 1000 / double(o.steps - 1));
        }
        row[graphs ? "graph_ms_per_step" : "eager_ms_per_step"] = bench::median(ms);
        if (graphs) {
          row["graph_replays"] = s.graph_replays(), row["graphs_captured"] = s.graphs_captured();
          row["graphs_used"] = s.graphs_captured() > 0;  // false on the CPU: the same step, launched eagerly
        }
      }
      const double kv_bytes = 2.0 * c.n_layers * 2 * (context + o.steps / 2) * c.n_kv_heads * c.head_dim() * bytes_per;
      row["weight_bytes"] = weight_bytes;
      row["kv_bytes"] = kv_bytes;
      row["bound_ms"] = weight_bytes / o.bandwidth * 1000;
      row["bound_with_kv_ms"] = (weight_bytes + kv_bytes) / o.bandwidth * 1000;
      row["fraction_of_bound"] = row["bound_ms"].get<double>() / row["graph_ms_per_step"].get<double>();
      row["graph_speedup"] = row["eager_ms_per_step"].get<double>() / row["graph_ms_per_step"].get<double>();
      std::printf("%s\n", row.dump().c_str());
      std::fflush(stdout);
      out.push_back(row);
    }
  }
  return out;
}

// The --tokenizer preset with random weights, on the device, in eval mode.
tokenizer::VideoTokenizer make_tokenizer(const Opts& o) {
  auto t = tokenizer::TokenizerConfig::preset(o.tokenizer);
  if (o.tokenizer_size > 0) t.image_size = static_cast<int>(o.tokenizer_size);
  torch::manual_seed(0);
  tokenizer::VideoTokenizer tok(t);
  tok->to(o.device);
  tok->eval();
  return tok;
}

json bench_minute(const Opts& o) {
  auto tok = make_tokenizer(o);
  const auto& tc = tok->config;
  const int64_t grid = tc.image_size / tc.spatial_factor();
  const int64_t clip_codes = tc.latent_frames(65) * grid * grid;
  auto c = lm_config(o.lm_presets.at(0), tc.codebook_size, clip_codes + 64);
  lm::Llama m(c);
  m->to(o.device);
  gen::SamplingOptions so;
  gen::LongVideoGenerator g(tok, m, lm::Vocab(c.text_vocab, c.video_vocab), so, [](const std::string&) {
    return std::vector<int32_t>{5, 6, 7, 8, 9, 10, 11, 12};
  });
  gen::LongVideoOptions lo;
  lo.seconds = o.minute_seconds;
  int64_t frames = 0;
  gen::LongVideoCallbacks cb;
  cb.frames = [&](const at::Tensor& f, int64_t) { frames += f.size(1); };
  gen::GenerationTimings t;
  const double ms = device_ms(o.device, [&] { t = g.run(lo, {gen::PromptSchedule::single("x")}, cb); });
  json row = {{"preset", o.lm_presets.at(0)}, {"tokenizer", tc.name}, {"seconds_of_video", o.minute_seconds},
              {"frames", frames}, {"codes_per_branch", t.codes}, {"wall_s", ms / 1000},
              {"decode_s", t.decode_s}, {"prefill_s", t.prefill_s}, {"encode_s", t.encode_s}, {"pixels_s", t.pixels_s},
              {"codes_per_s", t.codes / (ms / 1000)}};
  std::printf("%s\n", row.dump().c_str());
  return row;
}

json bench_train(const Opts& o) {
  json out = json::array();
  const auto preset = o.lm_presets.at(0);
  auto c = lm_config(preset, 8192, o.train_seq);
  const bool cuda = o.device.is_cuda();
  for (bool fused : {true, false})
  for (bool ckpt : {false, true}) {
    if (!fused && ckpt) continue;
    torch::manual_seed(0);
    lm::Llama m(c);
    m->to(o.device);
    m->train();
    m->checkpoint_blocks = ckpt;
    torch::optim::AdamW opt(m->parameters(), torch::optim::AdamWOptions(1e-4).weight_decay(0.1));
    auto tokens = torch::randint(c.text_vocab, c.vocab_size(), {o.train_batch, o.train_seq},
                                 torch::TensorOptions().dtype(torch::kLong).device(o.device));
    auto step = [&] {  // the trainer's step: autocast forward, loss, backward, clip, AdamW
      opt.zero_grad();
      torch::Tensor loss;
      {
        CudaAutocast amp(cuda);
        auto logits = m->forward(tokens.narrow(1, 0, o.train_seq - 1));
        loss = torch::nn::functional::cross_entropy(logits.reshape({-1, c.vocab_size()}).to(torch::kFloat),
                                                    tokens.narrow(1, 1, o.train_seq - 1).reshape({-1}));
      }
      loss.backward();
      torch::nn::utils::clip_grad_norm_(m->parameters(), 1.0);
      adamw_step(opt, fused);
    };
    step();  // warm-up
    reset_device_peak(o.device);
    std::vector<double> ms;
    for (int r = 0; r < o.reps; ++r) ms.push_back(device_ms(o.device, step));
    const double tokens_per_s = o.train_batch * (o.train_seq - 1) / (bench::median(ms) / 1000);
    const double N = static_cast<double>(m->parameter_count());
    // Attention's own products: 12 L d T per token (forward and backward, causal half not subtracted).
    const double attn = 12.0 * c.n_layers * c.dim * o.train_seq;
    json row = {{"preset", preset}, {"parameters", m->parameter_count()}, {"seq", o.train_seq},
                {"batch", o.train_batch}, {"fused_adamw", fused && fused_adamw_available()},
                {"activation_checkpointing", ckpt}, {"ms_per_step", bench::median(ms)},
                {"peak_device_mb", device_peak_bytes(o.device) < 0 ? json(nullptr) : json(device_peak_bytes(o.device) / 1048576.0)},
                {"tokens_per_s", tokens_per_s},
                {"mfu", 6 * N * tokens_per_s / (o.peak_tflops * 1e12)},
                {"mfu_with_attention", (6 * N + attn) * tokens_per_s / (o.peak_tflops * 1e12)}};
    std::printf("%s\n", row.dump().c_str());
    std::fflush(stdout);
    out.push_back(row);
  }
  return out;
}

json bench_tokenizer(const Opts& o) {
  auto tok = make_tokenizer(o);
  const auto& tc = tok->config;
  c10::InferenceMode guard;
  const int64_t T = 17;
  auto video = (torch::rand({o.tokenizer_batch, 3, T, tc.image_size, tc.image_size}) * 2 - 1).to(o.device);
  CudaAutocast bf16(o.device.is_cuda());
  torch::Tensor codes = tok->encode(video);
  tok->decode(codes);  // warm-up
  std::vector<double> enc, dec;
  for (int r = 0; r < o.reps; ++r) {
    enc.push_back(device_ms(o.device, [&] { codes = tok->encode(video); }));
    dec.push_back(device_ms(o.device, [&] { tok->decode(codes); }));
  }
  const double frames = double(o.tokenizer_batch) * T;
  json row = {{"tokenizer", tc.name}, {"parameters", tok->parameter_count()}, {"size", tc.image_size},
              {"batch", o.tokenizer_batch}, {"frames_per_clip", T}, {"bf16", o.device.is_cuda()},
              {"encode_frames_per_s", frames / (bench::median(enc) / 1000)},
              {"decode_frames_per_s", frames / (bench::median(dec) / 1000)}};
  std::printf("%s\n", row.dump().c_str());
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  Opts o;
  std::string device = "cuda", what = "decode,minute,train,tokenizer", lms = "700M,3B", contexts = "512,2048,4352";
  int threads = 0;
  CLI::App app{"CUDA-path figures: graph decoding, a minute of video, training MFU, tokenizer frames/s"};
  app.add_option("--device", device, "cpu or cuda");
  app.add_option("--what", what, "Comma-separated: decode, minute, train, tokenizer");
  app.add_option("--lm", lms, "Language-model presets (decode: each; minute and train: the first)");
  app.add_option("--tokenizer", o.tokenizer, "Tokenizer preset");
  app.add_option("--tokenizer-size", o.tokenizer_size, "Frame size instead of the preset's (0: the preset's)");
  app.add_option("--contexts", contexts, "Decode contexts (positions before the first timed step)");
  app.add_option("--steps", o.steps, "Decode steps per timed run")->check(CLI::Range(2, 100000));
  app.add_option("--reps", o.reps, "Timed repetitions (median)")->check(CLI::Range(1, 1000));
  app.add_option("--minute-seconds", o.minute_seconds, "Seconds of video for 'minute'")->check(CLI::Range(0.5, 3600.0));
  app.add_option("--train-seq", o.train_seq, "Training sequence length")->check(CLI::Range(8, 1 << 20));
  app.add_option("--train-batch", o.train_batch, "Training sequences per step")->check(CLI::Range(1, 4096));
  app.add_option("--tokenizer-batch", o.tokenizer_batch, "Clips per tokenizer call")->check(CLI::Range(1, 4096));
  app.add_option("--bandwidth", o.bandwidth, "Memory bandwidth, bytes/s (H200: 4.8e12)");
  app.add_option("--peak-tflops", o.peak_tflops, "Dense bf16 peak, TFLOP/s (H200: 989)");
  app.add_option("--threads", threads, "CPU threads (0 = the machine's cores)");
  CLI11_PARSE(app, argc, argv);
  try {
    o.device = parse_device(device);
    init_threads(threads);
    o.lm_presets = split(lms);
    for (const auto& s : split(contexts)) o.contexts.push_back(std::stoll(s));
    if (o.lm_presets.empty() || o.contexts.empty()) throw std::runtime_error("--lm and --contexts need values");
    json result = {{"device", o.device.str()},
                   {"libtorch", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR)},
                   {"cuda_graphs", cuda_graphs_available()}, {"fused_adamw", fused_adamw_available()}};
    for (const auto& w : split(what)) {
      if (w == "decode") result["decode"] = bench_decode(o);
      else if (w == "minute") result["minute"] = bench_minute(o);
      else if (w == "train") result["train"] = bench_train(o);
      else if (w == "tokenizer") result["tokenizer"] = bench_tokenizer(o);
      else throw std::runtime_error("--what: unknown part '" + w + "'");
    }
    std::printf("RESULT %s\n", result.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
