// Training batches for the language model (docs/method.md §3-§4): shard samples ->
// padded [text; video] sequences with next-token targets, the Eq. 2 loss
// weights and the frame range of every video target (the paper's Fig. 3:
// frame 1, frames 2-17, frames 18-65).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include <torch/types.h>

#include "loong/lm/shards.h"
#include "loong/lm/vocab.h"

namespace loong::lm {

struct BatchOptions {
  int latent_frames = 1;         // video latent frames per sample (1 = images, 5 = 17 frames, 17 = 65 frames)
  double caption_dropout = 0.1;  // probability of an empty caption (the unconditional branch of CFG)
  double lambda = 0;             // Eq. 2: targets in latent frames [0, weighted_frames) weigh 1 + lambda
  int weighted_frames = 5;       // the first 17 frames
  int given_latent_frames = 0;   // the first latent frames are given: no loss, no range, not counted
};

// Latent frame -> loss range: 0 = frame 1 (latent 0), 1 = frames 2-17 (latent 1-4),
// 2 = frames 18-65 and later (latent >= 5).
constexpr int kRanges = 3;
int range_of_latent_frame(int t);
const char* range_name(int r);  // "frame_1", "frames_2_17", "frames_18_65"

struct Batch {
  torch::Tensor input;   // int64 [B, L]: sequence[:-1], right-padded with <pad>
  torch::Tensor target;  // int64 [B, L]: sequence[1:]
  torch::Tensor weight;  // float [B, L]: 0 except video targets (1, or 1 + lambda)
  torch::Tensor range;   // int64 [B, L]: the video target's range, -1 elsewhere
  int64_t video_tokens = 0;
  int64_t tokens = 0;    // input positions that are not padding
};

// Takes the first `latent_frames` latent frames of each sample (the tokenizer
// is causal, so those are the tokens of the clip's first 1 + 4(k-1) frames);
// a sample with fewer is an error. Dropout draws from `rng`.
Batch make_batch(const std::vector<SampleView>& samples, const Vocab& vocab, const BatchOptions& o,
                 std::mt19937_64& rng);
// The same with the dropout decisions given (drop[i]: sample i's caption is
// dropped): a rank builds its share of a micro-batch whose draws were made
// for the whole of it. With `starts`, sample i's given latent frames are the
// first ones of starts[i] (a splice: another sample's start, same grid).
Batch make_batch(const std::vector<SampleView>& samples, const Vocab& vocab, const BatchOptions& o,
                 const std::vector<bool>& drop, const std::vector<SampleView>* starts = nullptr);
// The draws make_batch(..., rng) makes: one per sample, in order.
std::vector<bool> draw_caption_dropout(size_t samples, double p, std::mt19937_64& rng);

struct LossParts {
  torch::Tensor loss;                 // sum(weight * CE) / video tokens (Eq. 2), differentiable
  double range_loss[kRanges] = {0};   // mean unweighted CE per range (NaN where a range has no tokens)
  int64_t range_tokens[kRanges] = {0};
};

// logits [B, L, V] for a batch.
LossParts video_loss(const torch::Tensor& logits, const Batch& b);

}  // namespace loong::lm
