// Choosing the next video token (docs/method.md §5): classifier-free guidance,
// temperature, top-k and optional top-p, restricted to video ids.
#pragma once
#include <cstdint>
#include <string>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace loong::gen {

struct SamplingOptions {
  double cfg_scale = 7.5;    // logits = uncond + s * (cond - uncond); 1 switches guidance off
  double temperature = 1.0;  // > 0
  int64_t top_k = 50;        // >= 1; 1 is greedy; >= the codebook size samples the whole vocabulary
  double top_p = 1.0;        // (0, 1]; 1 keeps every one of the top k
  uint64_t seed = 0;

  bool guided() const { return cfg_scale != 1.0; }
};

// Throws loong::Error naming the option ("--top-k", ...) for a bad value.
void validate(const SamplingOptions& o);

// uncond + s * (cond - uncond), element-wise.
at::Tensor cfg_combine(const at::Tensor& cond, const at::Tensor& uncond, double scale);

// A CPU generator seeded with `seed` (draws are the same on every device,
// since sampling happens on the CPU from the top-k candidates).
at::Generator make_generator(uint64_t seed);

// logits [B, V] over the video codes only (the caller slices the video id
// range out of the vocabulary, so no other id can be drawn) -> codes int64
// [B] in [0, V) on the CPU. Greedy (top_k == 1) ignores the generator.
at::Tensor sample_codes(const at::Tensor& logits, const SamplingOptions& o, at::Generator& gen);

// The distribution sample_codes draws from, over the whole vocabulary: float
// [B, V] on the CPU, zero outside the top k (and the top-p prefix), summing to
// 1; one-hot on the argmax for top_k == 1. Speculative decoding accepts a
// drafted code with the probability this gives it.
at::Tensor sampling_probs(const at::Tensor& logits, const SamplingOptions& o);

// The same choice with every shape fixed and nothing copied to the host, so
// that a CUDA graph can hold it: codes int64 [B] on the logits' device, drawn
// from `gen` (a generator of that device, ops/device.h) by the exponential
// race: argmax_i p_i / E_i with E_i ~ Exp(1) picks i with probability p_i
// (LibTorch's multinomial draws one sample the same way). The same seed gives
// other codes than sample_codes, whose draws come from the CPU.
at::Tensor sample_codes_on_device(const at::Tensor& logits, const SamplingOptions& o, at::Generator& gen);

}  // namespace loong::gen
