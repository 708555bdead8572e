// The `loong` CLI: each subsystem registers its commands on the app. A
// command declares its options, calls one library function and prints; the
// work is in the library (src/loong), shared with the tests and benchmarks.
#pragma once
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "loong/gen/bundle.h"
#include "loong/gen/sampling.h"
#include "loong/io/video.h"

namespace loong::cli {

struct Globals {
  int threads = 0;  // 0 = $LOONG_THREADS or every core
};

// Wraps a command body: sets thread counts first. Errors propagate to main.
std::function<void()> command(const Globals& g, std::function<void()> body);

// --fps --size --start --end --max-frames --max-pixels
void add_read_options(CLI::App* cmd, video::ReadOptions& r, bool with_time_range = true);

// --seed --cfg --first-clip-cfg --top-k --top-p --temperature (generate, eval long)
struct SamplingFlags {
  CLI::Option *cfg = nullptr, *first_clip_cfg = nullptr, *temperature = nullptr;
  gen::SamplingGiven given() const;  // which of the model-defaulted values were given
};
SamplingFlags add_sampling_options(CLI::App* cmd, gen::SamplingOptions& s, double& first_clip_cfg);

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

}  // namespace loong::cli
