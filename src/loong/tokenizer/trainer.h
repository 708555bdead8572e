// Tokenizer training: losses (L1, optional perceptual, codebook/commitment,
// PatchGAN with adaptive weight and LeCAM), progressive stages, AdamW with
// warm-up + cosine, clipping, EMA, bfloat16 autocast on CUDA, JSONL logs,
// reconstruction sheets and atomic, resumable checkpoints.
//
// Run folder:
//   run.json                  the run config
//   log.jsonl                 one JSON object per step
//   samples/step-NNNNNNNN.png originals (odd rows) over reconstructions (even rows)
//   checkpoints/step-NNNNNNNN/{model.safetensors, config.json,   <- a model folder (EMA weights)
//                              trainer.safetensors, optimizer.safetensors, disc_optimizer.safetensors, trainer.json}
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "loong/data/clip_sampler.h"
#include "loong/dist/group.h"
#include "loong/tokenizer/discriminator.h"
#include "loong/tokenizer/model.h"
#include "loong/tokenizer/train_config.h"

namespace loong::tokenizer {

// Returns uint8 clips [batch, frames, H, W, 3].
using BatchFn = std::function<torch::Tensor(int frames, int batch, std::mt19937_64& rng)>;

struct TrainerOptions {
  std::string run_dir;
  c10::Device device = c10::Device("cpu");
  bool resume = false;                  // continue from the newest checkpoint in run_dir
  // Start a new run from this tokenizer's weights (a model, checkpoint or run
  // folder of the same architecture) instead of a random initialisation:
  // fine-tuning, e.g. on one's own videos or with other losses.
  std::string init_model;
  std::function<void(const std::string&)> print;  // console lines (null = quiet)
  // Data-parallel training over this group (docs/distributed.md); null = alone.
  // Each rank trains on its share of every batch (stage batch_size / world
  // size clips, drawn with its own generator); gradients, the quantizer's
  // usage and anchors, the adaptive GAN weight and LeCAM's averages are those
  // of the whole batch. Rank 0 writes the log, samples and checkpoints.
  std::shared_ptr<dist::Group> group;
  nlohmann::json data_identity;  // what the ranks must agree on about the data (the manifest)
};

class TokenizerTrainer {
 public:
  TokenizerTrainer(RunConfig config, TrainerOptions opts);
  ~TokenizerTrainer();

  // Trains until the last stage ends (or max_minutes), writing a final
  // checkpoint. Returns the number of steps done in total.
  int64_t run(const BatchFn& next_batch);

  // The config a run folder's newest checkpoint was trained with (--resume
  // without --config). Throws naming the folder when there is none.
  static RunConfig run_config(const std::string& run_dir);
  // How training clips are read for `cfg`: its frame rate and size, windows
  // cut from the first 4x the longest stage's frames, its cache.
  static data::SamplerOptions sampler_options(const RunConfig& cfg);

  // One optimisation step on uint8 clips [B, T, H, W, 3]; returns the log record.
  nlohmann::json step(const torch::Tensor& clips);

  void save_checkpoint();
  int64_t global_step() const;
  VideoTokenizer model() const;      // the trained weights
  VideoTokenizer ema_model() const;  // the exported weights (== model() without EMA)
  PatchDiscriminator discriminator() const;  // null when the run has no GAN
  const RunConfig& config() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace loong::tokenizer
