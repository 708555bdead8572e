#include "loong/gen/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

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
[[noreturn]] void not_finite() {
  fail("sampling", "the model's scores for the next code are not finite numbers (a diverged checkpoint, or a "
                   "guidance scale --cfg too large for them)");
}
void require_finite(const at::Tensor& probs) {
  if (!probs.isfinite().all().item<bool>()) not_finite();
}

}  // namespace

at::Tensor cfg_combine(const at::Tensor& cond, const at::Tensor& uncond, double scale) {
  return uncond + scale * (cond - uncond);
}

at::Generator make_generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

namespace {
// sample_codes on float32 CPU logits as one loop a row: the top k by a
// partial selection, their softmax, the top-p prefix and one uniform draw
// against the cumulative mass. A decoding step of a small model is otherwise
// about half LibTorch's fixed cost per operation (a dozen of them a code,
// docs/benchmarks.md, "The decode step without LibTorch's operations").
at::Tensor sample_codes_cpu(const at::Tensor& logits, const SamplingOptions& o, int64_t k, at::Generator& gen) {
  const auto l = logits.contiguous();
  const int64_t B = l.size(0), V = l.size(1);
  const auto u = torch::rand({B}, gen, torch::kDouble);  // one uniform a row
  auto out = torch::empty({B}, torch::kLong);
  const float* lp = l.data_ptr<float>();
  const double* up = u.data_ptr<double>();
  int64_t* op = out.data_ptr<int64_t>();
  std::vector<int32_t> order(static_cast<size_t>(V));
  std::vector<double> p(static_cast<size_t>(k));
  for (int64_t b = 0; b < B; ++b) {
    const float* row = lp + b * V;
    for (int64_t i = 0; i < V; ++i)
      if (std::isnan(row[i]) || row[i] == std::numeric_limits<float>::infinity()) not_finite();
    std::iota(order.begin(), order.end(), 0);
    const auto higher = [row](int32_t a, int32_t c) { return row[a] > row[c] || (row[a] == row[c] && a < c); };
    std::nth_element(order.begin(), order.begin() + (k - 1), order.end(), higher);
    std::sort(order.begin(), order.begin() + k, higher);
    const double top = row[order[0]] / o.temperature;
    if (!std::isfinite(top)) not_finite();  // every candidate at -inf
    double sum = 0;
    for (int64_t i = 0; i < k; ++i) sum += p[static_cast<size_t>(i)] = std::exp(row[order[static_cast<size_t>(i)]] / o.temperature - top);
    double kept = 0, before = 0;
    for (int64_t i = 0; i < k; ++i) {  // the top-p prefix: candidates whose mass before them is < top_p
      double& pi = p[static_cast<size_t>(i)];
      const double mass = pi / sum;
      if (o.top_p < 1 && before >= o.top_p) pi = 0;
      before += mass;
      kept += pi;
    }
    const double target = up[b] * kept;
    int64_t pick = 0;
    double cum = 0;
    for (int64_t i = 0; i < k; ++i) {
      if (p[static_cast<size_t>(i)] == 0) continue;
      pick = i;
      cum += p[static_cast<size_t>(i)];
      if (cum > target) break;
    }
    op[b] = order[static_cast<size_t>(pick)];
  }
  return out;
}
}  // namespace

at::Tensor sample_codes(const at::Tensor& logits, const SamplingOptions& o, at::Generator& gen) {
  if (logits.dim() != 2) fail("sampling", "expected logits [B, V], got " + c10::str(logits.sizes()));
  const int64_t V = logits.size(1);
  if (o.top_k == 1) return logits.argmax(-1).to(torch::kCPU, torch::kLong);
  const int64_t k = std::min<int64_t>(o.top_k, V);
  if (logits.device().is_cpu() && logits.scalar_type() == at::kFloat && V > 0 && V < (int64_t{1} << 31))
    return sample_codes_cpu(logits, o, k, gen);
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
