// Generation speed and memory with the tiny preset (random weights: speed
// does not depend on what the weights learned).
//
//  1. Decode throughput, batch of two (conditional + unconditional for
//     guidance): loong's sampler with its preallocated KV cache against a
//     naive loop that runs the whole sequence through the model for every new
//     token (the same masked model, no cache). Interleaved, medians.
//  2. The wall time of a 60-second video (7 clips, re-encoding between them)
//     with loong, and the language-model time of both loops for the same
//     clips (the first --naive-clips of them, default all; with all, the
//     naive wall time = its LM time + the same tokenizer time); and of every
//     clip with the sampler's reference decoding (see 4).
//  3. Memory over the 60-second run: resident and peak RSS after each clip.
//     Frames go to a callback and are dropped, as gen/generate.h streams them.
//
//  4. The fused decode step (lm::DecodeStep, what the sampler runs) against
//     the model's general forward pass one position at a time (the sampler
//     before it), at each length of --step-codes; interleaved, medians, and
//     greedy codes compared.
//
//   bench_generate [--seconds 60] [--codes 272] [--reps 3] [--threads 0] [--naive-clips 7]
//                  [--step-codes 272,1088] [--kv-heads 4] [--rope 1d|3d] [--tokenizer tiny|FILE.json]
// --tokenizer takes a tokenizer run config (scripts/tokenizer_tiny_1024_4x.json:
// 4x in space, so a clip is 4,352 codes); --kv-heads sets the language model's
// key/value heads (grouped-query attention reads a smaller cache); --rope 3d
// gives it 3D rotary positions on the tokenizer's latent grid.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include "bench_common.h"
#include "loong/core/runtime.h"
#include "loong/gen/code_sampler.h"
#include "loong/gen/long_video.h"
#include "loong/tokenizer/train_config.h"

using namespace loong;
using nlohmann::json;

namespace {

double rss_mb() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1 << 20);
}

double peak_rss_mb() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

// The naive loop: every step runs the whole sequence so far (prompt + codes)
// through the model, with the same left padding and mask as loong's sampler,
// and keeps nothing between steps.
torch::Tensor naive_generate(lm::Llama& model, const lm::Vocab& vocab, const std::vector<gen::ClipPrompt>& prompts,
                             int64_t n, const gen::SamplingOptions& o, at::Generator& rng) {
  c10::InferenceMode guard;
  const int64_t B = static_cast<int64_t>(prompts.size()), R = 2 * B;
  const auto packed = gen::pack_prompts(vocab, prompts, true, n);
  const int64_t P = packed.length;
  auto seq = torch::cat({packed.tokens, torch::full({R, n}, vocab.pad(), torch::kLong)}, 1);
  const auto& valid = packed.valid;
  const int64_t T = vocab.text_size(), V = vocab.video_size();
  auto out = torch::empty({B, n}, torch::kLong);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = P + i;
    lm::KvCache scratch(model->config, R, len, torch::kCPU);  // holds this step only
    scratch.valid = valid.narrow(1, 0, len).contiguous();
    auto h = model->hidden(seq.narrow(1, 0, len), &scratch, 0).select(1, len - 1);
    auto logits = model->logits(h).narrow(1, T, V);
    auto codes = gen::sample_codes(gen::cfg_combine(logits.narrow(0, 0, B), logits.narrow(0, B, B), o.cfg_scale), o, rng);
    out.select(1, i).copy_(codes);
    if (i + 1 < n) {
      seq.select(1, len).narrow(0, 0, B).copy_(codes + T);
      seq.select(1, len).narrow(0, B, B).copy_(codes + T);
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 60;
  int64_t codes = 272;  // 4 latent frames of 8 x 8
  int reps = 3, threads = 0, naive_clips = 7, kv_heads = 0;
  std::vector<int64_t> step_codes = {272, 1088};
  std::string tokenizer_config = "tiny", rope = "1d";
  CLI::App app{"Generation speed and memory: loong's KV-cache sampler against a naive loop (docs/benchmarks.md)"};
  app.add_option("--seconds", seconds, "Length of the video of section 2")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--codes", codes, "Codes per decode in section 1")->check(CLI::Range(1, 1000000));
  app.add_option("--reps", reps, "Repetitions; medians are reported")->check(CLI::Range(1, 1000000));
  app.add_option("--threads", threads, "Threads (0 = the machine's cores)")->check(CLI::Range(0, 4096));
  app.add_option("--naive-clips", naive_clips, "Clips the naive loop decodes in section 2")
      ->check(CLI::Range(0, 4096));
  app.add_option("--step-codes", step_codes, "Comma-separated code counts for section 4 (fused step against forward)")
      ->delimiter(',')
      ->check(CLI::Range(1, 1000000));
  app.add_option("--kv-heads", kv_heads, "Key/value heads of the language model (0 = the tiny preset's)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--tokenizer", tokenizer_config, "Tokenizer config: a preset or a JSON file");
  app.add_option("--rope", rope, "Rotary positions: 1d or 3d")->check(CLI::IsMember({"1d", "3d"}));
  CLI11_PARSE(app, argc, argv);
  init_threads(threads);
  const bool kept = keep_freed_memory();  // as loong generate does; LOONG_KEEP_FREED_MEMORY=0 turns it off
  torch::manual_seed(0);
  auto tc = tokenizer::RunConfig::load(tokenizer_config).model;
  auto lc = lm::LmConfig::preset("tiny");
  if (kv_heads > 0) lc.n_kv_heads = kv_heads;
  lc.text_vocab = 128;
  lc.video_vocab = tc.codebook_size;
  lc.rope = rope;
  if (lc.rope_3d()) lc.rope_rows = lc.rope_cols = tc.image_size / tc.spatial_factor();
  lc.validate("--rope");
  tokenizer::VideoTokenizer tok(tc);
  lm::Llama model(lc);
  model->eval();
  lm::Vocab vocab(lc.text_vocab, lc.video_vocab);
  const std::vector<int32_t> text = {5, 17, 33, 2, 90, 41, 7, 64, 12, 3};  // a 10-piece caption
  gen::SamplingOptions so;  // cfg 7.5, top-k 50
  const int64_t codes_per_latent = (tc.image_size / tc.spatial_factor()) * (tc.image_size / tc.spatial_factor());
  json result = {{"bench", "generate"},
                 {"threads", at::get_num_threads()},
                 {"lm_parameters", model->parameter_count()},
                 {"lm_kv_heads", lc.n_kv_heads},
                 {"lm_rope", lc.rope},
                 {"tokenizer", tokenizer_config},
                 {"codes_per_latent_frame", codes_per_latent},
                 {"freed_memory_kept", kept}};

  // 3 (first, so that nothing else has raised the peak): the 60-second video.
  gen::LongVideoOptions o;
  o.seconds = seconds;
  std::vector<double> rss, peak;
  std::vector<gen::ClipPlan> plans;
  int64_t frames = 0;
  gen::LongVideoCallbacks cb;
  cb.clip_started = [&](const gen::ClipEvent& ev) { plans.push_back(*ev.plan); };
  cb.frames = [&](const at::Tensor& f, int64_t) {
    frames += f.size(1);
    rss.push_back(rss_mb());
    peak.push_back(peak_rss_mb());
  };
  // Random weights have no text tokenizer: every prompt is the 10-piece caption.
  gen::LongVideoGenerator g(tok, model, vocab, so, [&](const std::string&) { return text; });
  const auto t = g.run(o, {gen::PromptSchedule::single("a caption")}, cb);
  result["video"] = {{"seconds", seconds},
                     {"frames", frames},
                     {"clips", plans.size()},
                     {"codes", t.codes},
                     {"wall_s", t.total_s},
                     {"prefill_s", t.prefill_s},
                     {"decode_s", t.decode_s},
                     {"tokenizer_encode_s", t.encode_s},
                     {"tokenizer_decode_s", t.pixels_s},
                     {"codes_per_s", t.codes / (t.prefill_s + t.decode_s)},
                     {"rss_mb_after_clip", rss},
                     {"peak_rss_mb_after_clip", peak},
                     {"peak_growth_after_clip2_mb", peak.size() > 1 ? peak.back() - peak[1] : 0.0}};

  // 1: decode throughput, cached against naive, the same prompt and count.
  std::vector<double> cached_ms, naive_ms;
  bool same = true;
  for (int r = 0; r < reps; ++r) {
    gen::SamplingOptions greedy = so;
    greedy.top_k = r == 0 ? 1 : so.top_k;  // the first round also checks that both give the same codes
    gen::CodeSampler s(model, vocab, greedy);
    torch::Tensor a, b;
    cached_ms.push_back(bench::time_ms([&] { a = s.generate({{text, {}}}, codes); }));
    auto rng = gen::make_generator(greedy.seed);
    naive_ms.push_back(bench::time_ms([&] { b = naive_generate(model, vocab, {{text, {}}}, codes, greedy, rng); }));
    if (r == 0) same = torch::equal(a, b);
  }
  const double cached = codes / (bench::median(cached_ms) / 1000), naive = codes / (bench::median(naive_ms) / 1000);
  result["decode"] = {{"codes", codes},
                      {"batch_rows", 2},
                      {"cached_codes_per_s", cached},
                      {"naive_codes_per_s", naive},
                      {"ratio", cached / naive},
                      {"greedy_codes_identical", same}};

  // 2: the language-model time of the 60-second video's clips: loong's
  // sampler against the same sampler on the general forward pass (every
  // clip), and against the naive loop (the first --naive-clips of them: it
  // needs minutes per clip).
  double naive_lm_s = 0, loong_lm_s = 0, all_lm_s = 0, reference_lm_s = 0;
  int measured = 0;
  for (const auto& p : plans) {
    const int64_t hw = codes_per_latent, n = (p.latents - p.prefix_latents) * hw;
    std::vector<int32_t> prefix(static_cast<size_t>(p.prefix_latents * hw), 0);
    gen::CodeSampler s(model, vocab, so), reference(model, vocab, so);
    reference.set_reference_decode(true);
    const double lm_s = bench::time_ms([&] { s.generate({{text, prefix}}, n); }) / 1000;
    all_lm_s += lm_s;
    reference_lm_s += bench::time_ms([&] { reference.generate({{text, prefix}}, n); }) / 1000;
    if (measured >= naive_clips) continue;
    loong_lm_s += lm_s;
    auto rng = gen::make_generator(1);
    naive_lm_s += bench::time_ms([&] { naive_generate(model, vocab, {{text, prefix}}, n, so, rng); }) / 1000;
    ++measured;
  }
  result["clips"] = {{"measured", measured},
                     {"loong_lm_s", loong_lm_s},
                     {"naive_lm_s", naive_lm_s},
                     {"ratio", measured ? naive_lm_s / loong_lm_s : 0.0},
                     {"all_clips_lm_s", all_lm_s},
                     {"all_clips_reference_lm_s", reference_lm_s},
                     {"reference_ratio", reference_lm_s / all_lm_s}};
  if (measured == static_cast<int>(plans.size())) {
    const double naive_wall = naive_lm_s + t.encode_s + t.pixels_s;
    result["video"]["naive_wall_s"] = naive_wall;
    result["video"]["wall_ratio_naive_over_loong"] = naive_wall / t.total_s;
  }
  // 4: the fused step against the general forward pass, per length, and the
  // fused step's hand-written loops (on the CPU) against the same step on
  // LibTorch's operations.
  json steps = json::array();
  for (const int64_t n : step_codes) {
    std::vector<double> fused_ms, libtorch_ops_ms, reference_ms;
    bool identical = true;
    for (int r = 0; r < reps; ++r) {
      gen::SamplingOptions o = so;
      o.top_k = r == 0 ? 1 : so.top_k;  // the first round compares greedy codes
      gen::CodeSampler fused(model, vocab, o), libtorch_ops(model, vocab, o), reference(model, vocab, o);
      libtorch_ops.set_hand_kernels(false);
      reference.set_reference_decode(true);
      torch::Tensor a, b, c;
      fused_ms.push_back(bench::time_ms([&] { a = fused.generate({{text, {}}}, n); }));
      libtorch_ops_ms.push_back(bench::time_ms([&] { c = libtorch_ops.generate({{text, {}}}, n); }));
      reference_ms.push_back(bench::time_ms([&] { b = reference.generate({{text, {}}}, n); }));
      if (r == 0) identical = torch::equal(a, b) && torch::equal(a, c);
    }
    const double f = n / (bench::median(fused_ms) / 1000), g = n / (bench::median(reference_ms) / 1000),
                 t = n / (bench::median(libtorch_ops_ms) / 1000);
    steps.push_back({{"codes", n},
                     {"fused_codes_per_s", f},
                     {"fused_libtorch_ops_codes_per_s", t},
                     {"reference_codes_per_s", g},
                     {"ratio", f / g},
                     {"hand_kernels_ratio", f / t},
                     {"greedy_codes_identical", identical}});
  }
  result["decode_step"] = steps;
  std::printf("%s\n", result.dump().c_str());
  return 0;
}
