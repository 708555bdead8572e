// Options and wrappers shared by several commands.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "cli/commands.h"
#include "loong/core/error.h"
#include "loong/core/runtime.h"
#include "loong/dist/env.h"
#include "loong/dist/launch.h"
#include "loong/lm/shard_builder.h"

namespace loong::cli {

namespace {

// Ranks on one machine share its cores unless told otherwise.
int threads_for(const Globals& g) {
  if (g.threads > 0 || std::getenv("LOONG_THREADS")) return g.threads;
  try {
    const auto env = dist::env_from_process();
    if (env.active() && env.local_world_size > 1)
      return std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / env.local_world_size);
  } catch (const Error&) {
    // A malformed launcher variable is reported by the command that reads it.
  }
  return 0;
}

// CLI11's number checks (Range, PositiveNumber) let NaN through, and no
// option of loong means anything by NaN or infinity: every floating option
// given is checked here, before any command runs.
void reject_non_finite(const CLI::App& app) {
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->count() == 0 || opt->get_type_name().find("FLOAT") == std::string::npos) continue;
    for (const std::string& v : opt->results()) {
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (end != v.c_str() && !std::isfinite(d)) fail(opt->get_name(), "expected a finite number, got " + squote(v));
    }
  }
  for (const CLI::App* sub : app.get_subcommands()) reject_non_finite(*sub);
}

}  // namespace

std::function<void()> command(const Globals& g, std::function<void()> body, Heap heap) {
  return [&g, body = std::move(body), heap] {
    if (g.app) reject_non_finite(*g.app);
    init_threads(threads_for(g));
    keep_freed_memory(heap == Heap::Kept);
    body();
  };
}

std::pair<int, int> shard_part(const std::string& shard, bool given) {
  if (!given)
    if (const auto env = dist::env_from_process(); env.active()) return {env.rank, env.world_size};
  return lm::parse_shard(shard);
}

std::shared_ptr<dist::Group> join_job(const Globals& g, int nproc, c10::Device& device, double timeout_s) {
  const auto env = dist::env_from_process();
  if (nproc > 1) {
    if (env.active())
      fail("--nproc", "this process is already " + env.describe() +
                          "; start the workers with --nproc or with a launcher, not both");
    const auto ms = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
    // After a failure the others notice within the timeout (a dead peer: at once).
    throw ExitStatus{dist::launch_local(nproc, dist::without_option(g.argv, "--nproc"), ms + std::chrono::seconds(5))};
  }
  if (!env.active()) return nullptr;
  device = dist::rank_device(device, env);
  dist::GroupOptions o;
  o.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  o.device = device;
  return std::make_shared<dist::Group>(env, o);
}

void add_read_options(CLI::App* cmd, video::ReadOptions& r, bool with_time_range) {
  cmd->add_option("--fps", r.fps, "Output frame rate; 0 keeps every decoded frame")
      ->check(CLI::Range(0.0, 1000.0));
  cmd->add_option("--size", r.size, "Shorter side to this size, then centre crop to size x size; 0 keeps the size")
      ->check(CLI::Range(0, 16384));
  if (with_time_range) {
    cmd->add_option("--start", r.start, "Start time in seconds")->check(CLI::NonNegativeNumber);
    cmd->add_option("--end", r.end, "End time in seconds; negative = to the end");
  }
  cmd->add_option("--max-frames", r.max_frames, "Refuse inputs that give more output frames")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-pixels", r.max_pixels, "Refuse frames larger than this many pixels")
      ->check(CLI::PositiveNumber);
}

gen::SamplingGiven SamplingFlags::given() const {
  return {cfg->count() > 0, first_clip_cfg->count() > 0, temperature->count() > 0};
}

SamplingFlags add_sampling_options(CLI::App* cmd, gen::SamplingOptions& s, double& first_clip_cfg) {
  SamplingFlags f;
  cmd->add_option("--seed", s.seed, "Random seed (the same seed and settings give the same video)");
  f.cfg = cmd->add_option("--cfg", s.cfg_scale,
                          "Classifier-free guidance scale; 1 switches guidance off. Default: the model's (loong.json "
                          "cfg_scale), else 7.5");
  f.first_clip_cfg = cmd->add_option("--first-clip-cfg", first_clip_cfg,
                                     "Guidance scale of the first clip (made from the text alone). Default: the "
                                     "model's (loong.json first_clip_cfg_scale) unless --cfg is given, else --cfg");
  cmd->add_option("--top-k", s.top_k, "Sample among the k most likely codes; 1 is greedy");
  cmd->add_option("--top-p", s.top_p, "Then keep the smallest set of them holding this probability");
  f.temperature = cmd->add_option("--temperature", s.temperature,
                                  "Softmax temperature; default: the model's (loong.json temperature), else 1");
  return f;
}

void add_decode_weights_option(CLI::App* cmd, std::string& type) {
  cmd->add_option("--decode-weights", type,
                  "CPU only: the weights each decoding step reads, f32 (the model's), bf16 or int8 (per-row scales): "
                  "half or a quarter of the bytes, for large models whose steps wait on memory; the codes are then "
                  "close to, not the same as, f32's")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}));
}

void add_tokenizer_f32_option(CLI::App* cmd, bool& f32) {
  cmd->add_flag("--tokenizer-f32", f32,
                "Run the video tokenizer in float32 even where bfloat16 is native (CUDA; CPUs with AMX or "
                "AVX-512 BF16, where decoding clips is about 2x faster): frames then differ from float32's only "
                "as float32 results differ between machines");
}

}  // namespace loong::cli
