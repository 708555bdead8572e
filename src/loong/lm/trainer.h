// Progressive short-to-long training of the language model (docs/method.md §4):
// stages of images, then images + 17-frame clips, then images + 65-frame
// clips, each with its own AdamW schedule (linear warm-up, cosine decay to
// the stage end) and Eq. 2's weight λ on the first frames' tokens.
//
// Run folder:
//   run.json            the resolved training config (model vocabulary included)
//   log.jsonl           one JSON object per step (loss, per-range losses, grad norm, lr, tokens/s, ms)
//   loss_curves.png     smoothed per-range losses (the paper's Fig. 3), redrawn every plot_every steps
//   checkpoints/step-NNNNNNNN/{model.safetensors, config.json, optimizer.safetensors, trainer.safetensors, trainer.json}
//
// Batches are a function of (seed, step) alone, so a checkpoint's step is its
// data position, and resuming is exact: on the CPU, N steps + resume + N
// steps give the same weights bit for bit as 2N steps in one go.
//
// On many processes (opts.group) a stage's batch is the global batch: every
// rank draws the whole step's sequences and takes its share of each
// micro-batch, gradients are summed across ranks (dist/grad_sync.h) and
// Eq. 2 is normalised by the whole batch's video tokens, so a config means
// the same run at any world size (to float tolerance), and a checkpoint
// resumes at any world size.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include "loong/dist/group.h"
#include "loong/lm/model.h"
#include "loong/lm/train_config.h"

namespace loong::lm {

struct LmTrainerOptions {
  std::string run_dir;
  c10::Device device = c10::Device("cpu");
  bool resume = false;                              // continue from the newest checkpoint in run_dir
  // Start a new run from a trained language model's weights (a model, checkpoint or run
  // folder, or a packed bundle's folder) instead of a random initialisation: fine-tuning.
  // Its architecture and vocabulary must be the run's; not with `resume`.
  std::string init_model;
  int64_t stop_at = -1;                             // end this session (with a checkpoint) at this step; -1 = the end
  std::function<void(const std::string&)> print;    // console lines (null = quiet)
  std::function<void(const std::string&)> status;   // the progress bar, redrawn in place (null = none)
  // Data-parallel training over this group (docs/distributed.md); null = this process alone.
  // Rank 0 writes the log, plots and checkpoints; the others print nothing.
  std::shared_ptr<dist::Group> group;
};

class LmTrainer {
 public:
  // Opens the shards and checks them against the model and tokenizers;
  // with opts.resume, loads the newest checkpoint of run_dir.
  LmTrainer(LmTrainConfig config, LmTrainerOptions opts);
  ~LmTrainer();

  // The config a run folder was started with (its run.json).
  static LmTrainConfig run_config(const std::string& run_dir);

  // Trains until the last stage ends (or max_minutes), then checkpoints.
  // Returns the number of steps done in total.
  int64_t run();

  // One optimiser step at the current global step; returns its log record.
  // A non-finite loss or gradient skips the update ("skipped": true); after
  // max_bad_steps in a row it throws loong::Error.
  nlohmann::json step();

  void save_checkpoint();
  int64_t global_step() const;
  int64_t skipped_steps() const;
  Llama model() const;
  const LmTrainConfig& config() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace loong::lm
