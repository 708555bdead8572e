// The `loong` CLI: each subsystem registers its commands on the app. A
// command declares its options, calls one library function and prints; the
// work is in the library (src/loong), shared with the tests and benchmarks.
#pragma once
#include <functional>
#include <memory>
#include <vector>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>

#include "loong/dist/group.h"
#include "loong/gen/bundle.h"
#include "loong/gen/sampling.h"
#include "loong/io/video.h"

namespace loong::cli {

struct Globals {
  int threads = 0;  // 0 = $LOONG_THREADS or every core (shared by the ranks on one machine)
  std::vector<std::string> argv;  // as given, for --nproc's workers
  const CLI::App* app = nullptr;  // the parsed command line (numbers are checked before a command runs)
};

// Thrown by a command that ends with an exit status of its own (--nproc: the workers').
struct ExitStatus {
  int code = 0;
};

// How a command's process keeps freed memory (core/runtime.h, keep_freed_memory):
// kept in the heap for reuse, or glibc's defaults unless LOONG_KEEP_FREED_MEMORY=1
// (the trainers, whose heap can grow to twice the peak).
enum class Heap { Kept, Training };

// Wraps a command body: sets thread counts and the heap policy first. Errors
// propagate to main.
std::function<void()> command(const Globals& g, std::function<void()> body, Heap heap = Heap::Kept);

// Many processes (docs/distributed.md), for the commands that train:
//  - `nproc` > 1: starts that many workers of this same command line on this
//    machine and throws ExitStatus with their result (never returns);
//  - under a launcher's environment (torchrun, Slurm, RANK/WORLD_SIZE): joins
//    the job's process group and returns it, `device` set to this rank's GPU
//    when it is CUDA;
//  - else: null, and the command runs alone.
std::shared_ptr<dist::Group> join_job(const Globals& g, int nproc, c10::Device& device, double timeout_s);

// The part i of N a command that splits a dataset (tokenize, data moving-fashion)
// works on: its --shard i/N when given, else this rank's under a launcher's
// environment (one launcher command, many machines), else 0 of 1.
std::pair<int, int> shard_part(const std::string& shard, bool given);

// --fps --size --start --end --max-frames --max-pixels
void add_read_options(CLI::App* cmd, video::ReadOptions& r, bool with_time_range = true);

// --seed --cfg --first-clip-cfg --top-k --top-p --temperature (generate, eval long)
struct SamplingFlags {
  CLI::Option *cfg = nullptr, *first_clip_cfg = nullptr, *temperature = nullptr;
  gen::SamplingGiven given() const;  // which of the model-defaulted values were given
};
SamplingFlags add_sampling_options(CLI::App* cmd, gen::SamplingOptions& s, double& first_clip_cfg);
// --decode-weights f32|bf16|int8 (generate, eval long)
void add_decode_weights_option(CLI::App* cmd, std::string& type);
// --tokenizer-f32 (generate, eval long): LongVideoOptions::tokenizer_bf16 off
void add_tokenizer_f32_option(CLI::App* cmd, bool& f32);

void add_video_commands(CLI::App& app, Globals& g);
void add_data_commands(CLI::App& app, Globals& g);
void add_checkpoint_commands(CLI::App& app, Globals& g);
void add_tokenizer_commands(CLI::App& app, Globals& g);
void add_text_commands(CLI::App& app, Globals& g);
void add_tokenize_command(CLI::App& app, Globals& g);
void add_train_command(CLI::App& app, Globals& g);
void add_model_commands(CLI::App& app, Globals& g);
void add_generate_command(CLI::App& app, Globals& g);
void add_sr_commands(CLI::App& app, Globals& g);
void add_eval_commands(CLI::App& app, Globals& g);
void add_serve_command(CLI::App& app, Globals& g);

}  // namespace loong::cli
