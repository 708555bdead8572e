// Tokenizer training configuration: the model config plus everything the
// trainer needs (stages, optimiser, loss weights, discriminator, logging).
// A run config is one JSON document: {"model": {...}, "train": {...}}; both
// parts may start from a preset ({"preset": "tiny"}). Validated on load.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "loong/tokenizer/config.h"

namespace loong::tokenizer {

// Progressive training: each stage trains on clips of `frames` frames.
struct Stage {
  int frames = 1;        // 1 + 4k (1 = images)
  int64_t steps = 1000;
  int batch_size = 8;
  double lr_scale = 1.0;  // multiplies the schedule's lr during this stage
};

struct TrainConfig {
  std::vector<Stage> stages = {{1, 1000, 16}, {17, 1000, 2}};
  uint64_t seed = 0;
  double fps = 6.5;            // clips are sampled at this rate (65 frames = 10 s)

  // AdamW with linear warm-up and cosine decay to lr * min_lr_ratio.
  double lr = 1e-4, min_lr_ratio = 0.1, weight_decay = 1e-4, beta1 = 0.9, beta2 = 0.99;
  int64_t warmup_steps = 100;
  // Each later stage ramps the lr up again over this many steps. The convs'
  // older temporal taps get their first nonzero gradients when clips start,
  // and Adam's first steps on fresh moments are full-size sign steps on every
  // one of them at once: without the ramp the switch to clips knocked the
  // tiny run from 27 dB to 10-15 dB within a few steps.
  int64_t stage_warmup_steps = 100;
  double grad_clip = 1.0;      // global norm; 0 = off
  double ema_decay = 0.999;    // EMA of weights (the exported model); 0 = off

  // Losses: l1 |x - x̂|, l2 (x - x̂)² (the error PSNR measures), perceptual
  // (TorchScript network: (x, x̂) -> distance, images [N, 3, H, W] in [-1, 1]),
  // codebook + commitment (beta in the model).
  double l1_weight = 1.0;
  double l2_weight = 0.0;
  double perceptual_weight = 0.1;
  std::string perceptual_model;  // path; "" = no perceptual loss
  double codebook_weight = 1.0;

  // 3D PatchGAN discriminator, on from gan_start (< 0 = never).
  int64_t gan_start = -1;
  // The discriminator trains alone for this many steps before gan_start, so
  // that the generator's GAN term starts against one that already tells
  // reconstructions from real frames (docs/results.md, "A GAN fine-tune").
  int64_t disc_warmup_steps = 0;
  std::string gan_loss = "hinge";  // or "non_saturating"
  double gan_weight = 0.1;         // times the adaptive weight
  double adaptive_weight_max = 1e4;
  double disc_lr = 1e-4;
  int disc_channels = 64;
  int disc_layers = 3;
  double lecam_weight = 0.001;
  double lecam_decay = 0.999;

  // Fine-tune the decoder alone: the encoder and the codebook stay those of
  // --init, so every video gets the same codes as before and a language model
  // trained on them keeps working with the new decoder.
  bool decoder_only = false;

  bool mixed_precision = true;     // bfloat16 autocast on CUDA (ignored on CPU)
  bool fused_adamw = true;         // one AdamW kernel for all parameters where LibTorch has it (2.4+; ops/adamw.h)
  // Recompute the encoder's and decoder's blocks in backward instead of
  // keeping their activations (ops/checkpoint.h).
  bool activation_checkpointing = false;
  double dist_timeout_s = 600;  // many processes: a rank that hangs or dies this long stops the others

  // Logging and checkpoints (in steps). log_every is for the console; the
  // JSONL log gets every step.
  int64_t log_every = 1;
  int64_t sample_every = 500;
  int64_t checkpoint_every = 1000;
  int keep_checkpoints = 3;
  double max_minutes = 0;          // stop (with a checkpoint) after this long; 0 = no limit
  int64_t cache_mb = 4096;         // decoded clips kept in memory

  int64_t total_steps() const;
  // The stage a (0-based) global step belongs to.
  const Stage& stage_at(int64_t step) const;
  // Learning-rate multiplier at a step: warm-up, then cosine to min_lr_ratio.
  double lr_factor(int64_t step) const;

  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& j, const std::string& where);
  void validate(const TokenizerConfig& model, const std::string& where) const;
};

struct RunConfig {
  TokenizerConfig model;
  TrainConfig train;

  nlohmann::json to_json() const;
  static RunConfig from_json(const nlohmann::json& j, const std::string& where);
  // A preset name ("tiny", "paper") or a JSON file.
  static RunConfig load(const std::string& preset_or_path);
  static RunConfig preset(const std::string& name);
};

}  // namespace loong::tokenizer
