// Speculative decoding on a trained model (the default bundle, or --model):
// a video of --seconds with the bundle's sampling settings, one code per
// model call (the fused decode step: the baseline, same run) against each
// draft length of --drafts, interleaved, medians of --reps. Per draft length:
// the language model's decode seconds and codes/s, model calls, codes per
// call, and the share of drafted codes accepted. Then a greedy check (top-k
// 1, --check-seconds): the frames of one-at-a-time and speculative decoding
// are compared, byte for byte. With --one-thread-step 1 (default) the
// baseline runs a second time, interleaved, with the fused step on one
// thread instead of two (row "threaded_step": false): what the second
// core brings to the step. With --f32-weights-step 1 (default) it runs a
// third time with the step reading the bundle's float16 weights as float32
// (row "f16_weights": false; lm::DecodeStep::set_f16_weights): what half the
// bytes bring, for the same codes.
//
//   bench_speculative [--model DIR] [--seconds 60] [--drafts 0,2,3,4,6,8] [--reps 3] [--threads 0]
//                     [--prompt TEXT] [--check-seconds 10]
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include "bench_common.h"
#include "loong/core/runtime.h"
#include "loong/gen/bundle.h"
#include "loong/gen/long_video.h"
#include "loong/gen/sampling.h"
#include "loong/lm/model.h"

using namespace loong;
using nlohmann::json;

int main(int argc, char** argv) {
  CLI::App app("Speculative decoding against one code per call, on a trained model");
  std::string model, prompt = "a red sneaker moves slowly to the left on a black background";
  double seconds = 60, check_seconds = 10;
  std::string drafts_arg = "0,2,3,4,6,8";
  int reps = 3, threads = 0;
  app.add_option("--model", model, "Model bundle (default: models/default)");
  app.add_option("--seconds", seconds, "Seconds of video per run")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--drafts", drafts_arg, "Comma-separated codes per model call (0 = one at a time, the baseline)");
  app.add_option("--reps", reps, "Repetitions; medians are reported")->check(CLI::Range(1, 1000));
  app.add_option("--threads", threads, "Threads (0 = the machine's cores)")->check(CLI::Range(0, 4096));
  app.add_option("--prompt", prompt, "The prompt");
  app.add_option("--check-seconds", check_seconds, "Seconds of the greedy identity check (0 = skip)");
  std::string large = "700M";
  int large_reps = 3;
  app.add_option("--large", large, "A preset with random weights whose call cost is measured for the projection (\"\" = skip)");
  app.add_option("--large-reps", large_reps, "Calls per draft length for --large")->check(CLI::Range(1, 100));
  bool one_thread_step = true, f32_weights_step = true;
  app.add_option("--one-thread-step", one_thread_step,
                 "Also run the baseline with the step on one thread (lm::DecodeStep::set_threaded)");
  app.add_option("--f32-weights-step", f32_weights_step,
                 "Also run the baseline with the step reading float32 weights (lm::DecodeStep::set_f16_weights)");
  CLI11_PARSE(app, argc, argv);
  try {
    init_threads(threads);
    // As every loong command but the trainers: the heap `loong generate`
    // decodes with (one arena; without it this bench missed the contention
    // that cost the CLI's decode 25%, docs/benchmarks.md).
    keep_freed_memory();
    std::vector<int64_t> drafts;
    {
      std::stringstream in(drafts_arg);
      for (std::string x; std::getline(in, x, ',');) drafts.push_back(std::stoll(x));
    }
    const std::string dir = gen::model_or_default(model);
    auto bundle = gen::load_bundle(dir);
    gen::SamplingOptions sampling;
    double first_clip_cfg = 0;
    gen::resolve_sampling(bundle.info, gen::SamplingGiven{}, sampling, first_clip_cfg);
    auto opts = gen::bundle_video_options(bundle.info);
    opts.first_clip_cfg = first_clip_cfg;

    auto run = [&](gen::SamplingOptions s, int64_t draft, double secs, std::vector<at::Tensor>* frames,
                   bool split = true, bool f16 = true) {
      auto g = gen::LongVideoGenerator::from_bundle(bundle, s);
      g.set_threaded(split);
      g.set_f16_weights(f16);
      auto o = opts;
      o.seconds = secs;
      o.speculative = draft;
      gen::LongVideoCallbacks cb;
      if (frames) cb.frames = [&](const at::Tensor& f, int64_t) { frames->push_back(f); };
      return g.run(o, {gen::PromptSchedule::single(prompt)}, cb);
    };
    std::map<int64_t, std::vector<double>> decode_s, lm_s;
    std::map<int64_t, gen::GenerationTimings> last;
    std::vector<double> one_thread_lm_s, f32_lm_s;
    gen::GenerationTimings one_thread, f32_weights;
    for (int r = 0; r < reps; ++r) {
      auto s = sampling;
      s.seed = static_cast<uint64_t>(r);  // every draft length sees the same seeds
      for (int64_t k : drafts) {
        const auto t = run(s, k, seconds, nullptr);
        decode_s[k].push_back(t.decode_s);
        lm_s[k].push_back(t.prefill_s + t.decode_s);
        last[k] = t;
      }
      if (one_thread_step) {
        one_thread = run(s, 0, seconds, nullptr, false);
        one_thread_lm_s.push_back(one_thread.prefill_s + one_thread.decode_s);
      }
      if (f32_weights_step) {
        f32_weights = run(s, 0, seconds, nullptr, true, false);
        f32_lm_s.push_back(f32_weights.prefill_s + f32_weights.decode_s);
      }
    }
    json out = {{"model", dir}, {"seconds", seconds}, {"reps", reps}, {"threads", at::get_num_threads()},
                {"top_k", sampling.top_k}, {"cfg", sampling.cfg_scale}, {"runs", json::array()}};
    const double base = bench::median(lm_s[drafts.at(0)]);
    for (int64_t k : drafts) {
      const auto& t = last[k];
      json row = {{"draft", k},
                  {"threaded_step", true},
                  {"decode_s", bench::median(decode_s[k])},
                  {"lm_s", bench::median(lm_s[k])},
                  {"codes", t.codes},
                  {"lm_codes_per_s", t.codes / bench::median(lm_s[k])},
                  {"decode_calls", t.decode_calls},
                  {"codes_per_call", t.decode_calls > 0 ? double(t.codes) / t.decode_calls : 0.0},
                  {"accepted_share", t.drafted > 0 ? double(t.accepted) / t.drafted : 0.0},
                  {"speedup_vs_first", base / bench::median(lm_s[k])}};
      std::printf("%s\n", row.dump().c_str());
      out["runs"].push_back(row);
    }
    // A baseline row: one code a call with the step changed as `what` says,
    // against the default step's one code a call where --drafts ran it.
    auto baseline_row = [&](const char* what, const char* against, const std::vector<double>& secs,
                            const gen::GenerationTimings& t) {
      const double lm = bench::median(secs);
      json row = {{"draft", 0},
                  {what, false},
                  {"lm_s", lm},
                  {"lm_codes_per_s", t.codes / lm},
                  {"decode_calls", t.decode_calls},
                  {"speedup_vs_first", base / lm}};
      if (lm_s.count(0)) row[against] = bench::median(lm_s[0]) / lm;
      std::printf("%s\n", row.dump().c_str());
      out["runs"].push_back(row);
    };
    if (one_thread_step)
      baseline_row("threaded_step", "speedup_vs_threaded_one_per_call", one_thread_lm_s, one_thread);
    if (f32_weights_step) baseline_row("f16_weights", "speedup_vs_f16_one_per_call", f32_lm_s, f32_weights);
    if (check_seconds > 0) {
      auto greedy = sampling;
      greedy.top_k = 1;
      std::vector<at::Tensor> a, b;
      run(greedy, 0, check_seconds, &a);
      int64_t k = 1;
      for (int64_t d : drafts) k = std::max(k, d);
      run(greedy, k, check_seconds, &b);
      out["greedy_identical"] = torch::equal(torch::cat(a, 1), torch::cat(b, 1));
      out["greedy_check_draft"] = k;
    }
    // The cost of one model call against the positions it scores: the fused
    // step (lm::DecodeStep::positions) at a mid-clip context, batch 2, and the
    // sampler's selection over them (sampling_probs), medians of 200 calls.
    {
      c10::InferenceMode guard;
      lm::DecodeStep step(bundle.lm), step_one_thread(bundle.lm), step_f32(bundle.lm);
      step_one_thread.set_threaded(false);
      step_f32.set_f16_weights(false);
      const int64_t ctx = 600;
      lm::KvCache cache(bundle.lm->config, 2, ctx + 16, torch::kCPU, bundle.lm->output->weight.scalar_type());
      auto head = bundle.lm->output->weight.narrow(0, bundle.lm->config.text_vocab, bundle.lm->config.video_vocab);
      json costs = json::array();
      for (int64_t k : {1, 2, 3, 4, 6, 8}) {
        std::vector<double> step_ms, one_thread_ms, f32_ms, select_ms;
        auto ids = torch::randint(bundle.lm->config.text_vocab, bundle.lm->config.vocab_size(), {2, k}, torch::kLong);
        for (int r = 0; r < 220; ++r) {
          cache.length = ctx;
          torch::Tensor h;
          step_ms.push_back(bench::time_ms([&] { h = step.positions(ids, cache); }));
          cache.length = ctx;
          one_thread_ms.push_back(bench::time_ms([&] { step_one_thread.positions(ids, cache); }));
          cache.length = ctx;
          f32_ms.push_back(bench::time_ms([&] { step_f32.positions(ids, cache); }));
          select_ms.push_back(bench::time_ms([&] {
            auto logits = torch::nn::functional::linear(h, head).reshape({2 * k, -1});
            gen::sampling_probs(logits, sampling);
          }));
        }
        step_ms.erase(step_ms.begin(), step_ms.begin() + 20);
        select_ms.erase(select_ms.begin(), select_ms.begin() + 20);
        one_thread_ms.erase(one_thread_ms.begin(), one_thread_ms.begin() + 20);
        f32_ms.erase(f32_ms.begin(), f32_ms.begin() + 20);
        json row = {{"positions", k},
                    {"step_ms", bench::median(step_ms)},
                    {"step_ms_on_one_thread", bench::median(one_thread_ms)},
                    {"step_ms_f32_weights", bench::median(f32_ms)},
                    {"head_and_probs_ms", bench::median(select_ms)}};
        std::printf("%s\n", row.dump().c_str());
        costs.push_back(row);
      }
      out["call_cost_at_context_600"] = costs;
      out["step_reads_f16_weights"] = step.reads_f16_weights();  // the bundle's float16 values, packed as such
    }
    // A large model on the CPU reads every weight once a call, whatever the
    // positions it scores: the call cost of --large (f32, batch 2, context
    // 512) for 1, 2, 4 positions, on the decode step the sampler runs (the
    // model's own weights, lm::DecodeStep with share_weights) and on the
    // general forward pass (the baseline, same run, interleaved). Per call:
    // the layers' weight bytes over its time against the machine's read
    // bandwidth (a sum over 1 GiB, same threads, timed between the calls, as
    // the machine's speed drifts), and the speed-up the
    // default model's codes per call would give (a projection: acceptance
    // measured on the small model, not on a trained large one).
    // Narrow weights (--decode-weights bf16/int8) against f32 on a model: 64
    // steps of greedy decoding from a 24-token prompt, batch 2, each step's
    // video logits from the f32 step and the narrow one on the same codes
    // (each with its own cache): the largest logit error over the logits'
    // spread (standard deviation), the mean KL divergence of the top-50
    // distributions (f32's to the narrow one's), and how often the top code agrees.
    auto narrow_error = [](lm::Llama m, const std::string& type) {
      c10::InferenceMode guard;
      const auto& c = m->config;
      torch::manual_seed(11);
      auto prompt = torch::randint(0, c.text_vocab, {2, 24}, torch::kLong);
      lm::KvCache a(c, 2, 96, torch::kCPU), b(c, 2, 96, torch::kCPU);
      m->hidden(prompt, &a, 0);
      m->hidden(prompt, &b, 0);
      const lm::DecodeStep f32(m, true, true), narrow(m, true, true, type);
      const auto head = m->output->weight.narrow(0, c.text_vocab, c.video_vocab);
      auto ids = torch::full({2}, c.text_vocab, torch::kLong);
      double worst = 0, kl = 0, agree = 0;
      const int steps = 64;
      for (int t = 0; t < steps; ++t) {
        auto la = torch::matmul(f32(ids, a), head.t()), lb = torch::matmul(narrow(ids, b), head.t());
        worst = std::max(worst, ((la - lb).abs().max() / la.std()).item<double>());
        auto [va, ia] = la.topk(50);
        auto pa = va.softmax(-1), pb = lb.gather(1, ia).softmax(-1);
        kl += (pa * (pa.log() - pb.log())).sum(-1).mean().item<double>() / steps;
        auto top = la.argmax(-1);
        agree += top.eq(lb.argmax(-1)).to(torch::kDouble).mean().item<double>() / steps;
        ids = top + c.text_vocab;
      }
      return json{{"weights", type}, {"max_logit_error_over_std", worst}, {"mean_kl_top50", kl}, {"top1_agreement", agree}};
    };
    out["narrow_weights_default_model"] = {narrow_error(bundle.lm, "bf16"), narrow_error(bundle.lm, "int8")};
    for (const auto& e : out["narrow_weights_default_model"]) std::printf("%s\n", e.dump().c_str());

    if (!large.empty()) {
      c10::InferenceMode guard;
      auto gib = torch::ones({int64_t{1} << 28});  // 1 GiB of float32
      std::vector<double> sum_ms;
      (void)gib.sum().item<float>();  // warm-up
      auto c = lm::LmConfig::preset(large);
      c.max_seq_len = 1024;
      lm::Llama big(c);
      big->eval();
      double layer_bytes = 0;
      for (const auto& p : big->layers->parameters()) layer_bytes += double(p.numel()) * p.element_size();
      const lm::DecodeStep step(big, true, /*share_weights=*/true);
      const lm::DecodeStep step_bf16(big, true, true, "bf16"), step_int8(big, true, true, "int8");
      const int64_t ctx = 512;
      lm::KvCache cache(c, 2, ctx + 8, torch::kCPU);
      std::map<int64_t, double> cost;
      json rows = json::array();
      for (int64_t k : {1, 2, 4}) {
        auto ids = torch::randint(c.text_vocab, c.vocab_size(), {2, k}, torch::kLong);
        std::vector<double> general_ms, step_ms, bf16_ms, int8_ms;
        for (int r = 0; r <= large_reps; ++r) {
          cache.length = ctx;  // the context is there (its values do not change the cost)
          general_ms.push_back(bench::time_ms([&] { big->hidden(ids, &cache, ctx); }));
          cache.length = ctx;
          step_ms.push_back(bench::time_ms([&] { step.positions(ids, cache); }));
          cache.length = ctx;
          bf16_ms.push_back(bench::time_ms([&] { step_bf16.positions(ids, cache); }));
          cache.length = ctx;
          int8_ms.push_back(bench::time_ms([&] { step_int8.positions(ids, cache); }));
          sum_ms.push_back(bench::time_ms([&] { (void)gib.sum().item<float>(); }));
        }
        general_ms.erase(general_ms.begin());  // warm-up
        step_ms.erase(step_ms.begin());
        bf16_ms.erase(bf16_ms.begin());
        int8_ms.erase(int8_ms.begin());
        cost[k] = bench::median(step_ms);
        const double bandwidth = (double(int64_t{1} << 30) / 1e9) / (bench::median(sum_ms) / 1e3);  // so far
        const double gbs = layer_bytes / 1e9 / (cost[k] / 1e3);
        json row = {{"preset", large},
                    {"parameters", big->parameter_count()},
                    {"positions", k},
                    {"call_ms", cost[k]},
                    {"general_forward_ms", bench::median(general_ms)},
                    {"vs_general_forward", bench::median(general_ms) / cost[k]},
                    {"weights_gb_per_s", gbs},
                    {"read_bandwidth_gb_per_s", bandwidth},
                    {"share_of_bandwidth", gbs / bandwidth},
                    {"bf16_call_ms", bench::median(bf16_ms)},
                    {"bf16_vs_f32", cost[k] / bench::median(bf16_ms)},
                    {"bf16_share_of_bandwidth", layer_bytes / 2 / 1e9 / (bench::median(bf16_ms) / 1e3) / bandwidth},
                    {"int8_call_ms", bench::median(int8_ms)},
                    {"int8_vs_f32", cost[k] / bench::median(int8_ms)},
                    {"int8_share_of_bandwidth", layer_bytes / 4 / 1e9 / (bench::median(int8_ms) / 1e3) / bandwidth}};
        for (const auto& r : out["runs"])
          if (r["draft"] == k && k > 1) {
            row["projected_speedup"] = r["codes_per_call"].get<double>() * cost[1] / cost[k];
            row["projected_codes_per_s"] = r["codes_per_call"].get<double>() / (cost[k] / 1e3);
          }
        std::printf("%s\n", row.dump().c_str());
        rows.push_back(row);
      }
      out["large"] = rows;
      out["narrow_weights_large_model"] = {narrow_error(big, "bf16"), narrow_error(big, "int8")};
      for (const auto& e : out["narrow_weights_large_model"]) std::printf("%s\n", e.dump().c_str());
    }
    std::printf("RESULT %s\n", out.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_speculative: %s\n", e.what());
    return 1;
  }
  return 0;
}
