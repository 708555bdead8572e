// Language-model training configuration (`loong train --config TRAIN.json`):
// the model, the data, and the progressive stages of docs/method.md §4. One JSON
// document, every key optional over a preset ("tiny" or "paper"):
//
//   {"preset": "tiny",
//    "model": {"preset": "tiny", ...LmConfig keys},
//    "data": "shards/",                   (relative paths: to the config file's folder)
//    "text_tokenizer": "text/", "video_tokenizer": "tokenizer-run/",   (optional, checked)
//    "stages": [{"name": "images", "frames": 1, "steps": 1000, "batch_size": 16, "lr": 1e-3, ...}, ...],
//    "weight_decay": 0.1, "grad_clip": 1.0, "caption_dropout": 0.1, ...}
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "loong/core/causal_frames.h"
#include "loong/lm/config.h"

namespace loong::lm {

struct LmStage {
  std::string name;
  int frames = 1;               // video frames per clip: 1 (images), 17, 65, ... (1 + 4k)
  double image_fraction = 0;    // share of micro-batches that are images (1 when frames == 1)
  int64_t steps = 1000;         // optimiser steps
  int batch_size = 8;           // sequences per micro-batch
  int grad_accum = 1;           // micro-batches per step
  double lr = 1e-4;             // peak; linear warm-up, then cosine to lr * min_lr_ratio at the stage end
  int64_t warmup_steps = 100;
  double min_lr_ratio = 0.1;
  double lambda = 0;            // Eq. 2: tokens of the first `weighted_frames` frames weigh 1 + lambda
  // Stories (a prompt that changes at a clip start, docs/lm.md "Stories"): a
  // clip's first `given_frames` frames (0, or 1 + 4k and fewer than `frames`)
  // are given, as generation gives the re-encoded end of the previous clip, and
  // carry no loss; in `splice_fraction` of the clips they are another sample's
  // first frames, so the clip's own caption names a scene its start does not show.
  int given_frames = 0;
  double splice_fraction = 0;
};

struct LmTrainConfig {
  LmConfig model;
  // The model's vocabulary sizes come from the shards unless the model
  // section names them (then a difference is an error).
  bool text_vocab_given = false, video_vocab_given = false;
  std::string data;             // a folder of shards or one shard
  std::string text_tokenizer, video_tokenizer;  // optional; recorded for generation and checked
  std::vector<LmStage> stages;
  uint64_t seed = 0;
  int temporal_factor = 4;      // video frames per latent frame (the tokenizer's)
  int weighted_frames = 17;     // Eq. 2's first K frames (17 = latent frames 0-4)
  double caption_dropout = 0.1;
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95;
  double grad_clip = 1.0;       // global norm; 0 = off
  bool mixed_precision = true;  // bfloat16 autocast on CUDA (ignored on CPU)
  bool fused_adamw = true;      // one AdamW kernel for all parameters where LibTorch has it (2.4+; ops/adamw.h)
  bool activation_checkpointing = false;  // recompute each block in backward (ops/checkpoint.h)
  // Many processes (docs/distributed.md): a stage's batch_size x grad_accum is the global batch;
  // each rank takes its share of every micro-batch, in passes of at most micro_batch sequences
  // (0 = the whole share in one pass).
  int micro_batch = 0;
  double bucket_mb = 25;        // gradients are summed across ranks in buckets of about this size
  double dist_timeout_s = 600;  // a rank that hangs or dies this long stops the others with an error
  int zero = 0;                 // 1: ZeRO stage 1, each rank keeps the AdamW state of its share of the parameters
  int64_t log_every = 1;        // console lines; the JSONL log gets every step
  int64_t plot_every = 100;     // loss_curves.png
  int64_t checkpoint_every = 500;
  int keep_checkpoints = 3;
  int max_bad_steps = 5;        // this many non-finite steps in a row stop the run
  double max_minutes = 0;       // stop (with a checkpoint) after this long; 0 = no limit

  int64_t total_steps() const;
  int stage_index(int64_t step) const;         // the stage a 0-based global step belongs to
  int64_t stage_start(int stage) const;        // its first global step
  double lr_at(int64_t step) const;            // warm-up then cosine, within the step's stage
  int latent_frames(int frames) const { return static_cast<int>(latent_frames_of(frames, temporal_factor)); }

  nlohmann::json to_json() const;
  // `base_dir` resolves relative paths (the config file's folder).
  static LmTrainConfig from_json(const nlohmann::json& j, const std::string& where, const std::string& base_dir = "");
  static LmTrainConfig preset(const std::string& name);  // "tiny", "paper"
  // A preset name or a JSON file.
  static LmTrainConfig load(const std::string& preset_or_path);
  void validate(const std::string& where) const;
};

std::vector<std::string> lm_train_preset_names();

}  // namespace loong::lm
