#include "loong/gen/sampling.h"

#include <cmath>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "loong/core/error.h"

namespace loong::gen {

void validate(const SamplingOptions& o) {
  if (!std::isfinite(o.cfg_scale) || o.cfg_scale < 0)
    fail("--cfg", "guidance scale must be a finite number >= 0 (1 switches guidance off), got " +
                      std::to_string(o.cfg_scale));
  if (!std::isfinite(o.temperature) || o.temperature <= 0)
    fail("--temperature", "must be > 0, got " + std::to_string(o.temperature));
  if (o.top_k < 1) fail("--top-k", "must be >= 1 (1 is greedy), got " + std::to_string(o.top_k));
  if (!(o.top_p > 0 && o.top_p <= 1)) fail("--top-p", "must be in (0, 1], got " + std::to_string(o.top_p));
}

namespace {

// Scores that overflow (a diverged checkpoint, a huge --cfg) give NaN
// probabilities, which multinomial would report as an internal error.
void require_finite(const at::Tensor& probs) {
  if (!probs.isfinite().all().item<bool>())
    fail("sampling", "the model's scores for the next code are not finite numbers (a diverged checkpoint, or a "
                     "guidance scale --cfg too large for them)");
}

}  // namespace

at::Tensor cfg_combine(const at::Tensor& cond, const at::Tensor& uncond, double scale) {
  return uncond + scale * (cond - uncond);
}

at::Generator make_generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

at::Tensor sample_codes(const at::Tensor& logits, const SamplingOptions& o, at::Generator& gen) {
  if (logits.dim() != 2) fail("sampling", "expected logits [B, V], got " + c10::str(logits.sizes()));
  const int64_t V = logits.size(1);
  if (o.top_k == 1) return logits.argmax(-1).to(torch::kCPU, torch::kLong);
  const int64_t k = std::min<int64_t>(o.top_k, V);
  // The top k on the logits' device, then a small [B, k] problem on the CPU.
  auto [vals, idx] = logits.to(torch::kFloat).topk(k, -1, true, true);
  vals = vals.to(torch::kCPU) / o.temperature;
  idx = idx.to(torch::kCPU);
  auto probs = torch::softmax(vals, -1);
  if (o.top_p < 1) {
    // Keep the smallest prefix of the sorted candidates whose mass reaches
    // top_p (always at least the most likely one).
    auto before = probs.cumsum(-1) - probs;
    probs = probs.masked_fill(before >= o.top_p, 0);
  }
  require_finite(probs);
  auto pick = torch::multinomial(probs, 1, false, gen);  // [B, 1] positions in the top k
  return idx.gather(-1, pick).squeeze(-1);
}

at::Tensor sampling_probs(const at::Tensor& logits, const SamplingOptions& o) {
  if (logits.dim() != 2) fail("sampling", "expected logits [B, V], got " + c10::str(logits.sizes()));
  const int64_t V = logits.size(1);
  auto out = torch::zeros({logits.size(0), V}, torch::kFloat);
  if (o.top_k == 1) return out.scatter_(1, logits.argmax(-1, true).to(torch::kCPU, torch::kLong), 1.0);
  // The steps of sample_codes, then its implicit normalisation made explicit.
  const int64_t k = std::min<int64_t>(o.top_k, V);
  auto [vals, idx] = logits.to(torch::kFloat).topk(k, -1, true, true);
  vals = vals.to(torch::kCPU) / o.temperature;
  auto probs = torch::softmax(vals, -1);
  if (o.top_p < 1) probs = probs.masked_fill(probs.cumsum(-1) - probs >= o.top_p, 0);
  probs = probs / probs.sum(-1, true);
  require_finite(probs);
  return out.scatter_(1, idx.to(torch::kCPU), probs);
}

at::Tensor sample_codes_on_device(const at::Tensor& logits, const SamplingOptions& o, at::Generator& gen) {
  if (logits.dim() != 2) fail("sampling", "expected logits [B, V], got " + c10::str(logits.sizes()));
  if (o.top_k == 1) return logits.argmax(-1);
  const int64_t k = std::min<int64_t>(o.top_k, logits.size(1));
  auto [vals, idx] = logits.to(torch::kFloat).topk(k, -1, true, true);
  auto probs = torch::softmax(vals / o.temperature, -1);
  if (o.top_p < 1) probs = probs.masked_fill(probs.cumsum(-1) - probs >= o.top_p, 0);
  // The CPU's exponential_ can return exactly 0 (0 / 0 would win the argmax).
  auto race = probs / torch::empty_like(probs).exponential_(1, gen).clamp_min_(std::numeric_limits<float>::min());
  return idx.gather(-1, race.argmax(-1, true)).squeeze(-1);
}

}  // namespace loong::gen
