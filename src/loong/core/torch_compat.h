// The one place where LibTorch version differences are handled. Code must build
// against Debian's LibTorch 1.13 (CPU) and LibTorch 2.x (CUDA).
#pragma once
#include <cmath>
#include <limits>

#include <torch/version.h>

#define LOONG_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||        \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// LibTorch 2.0 added at::scaled_dot_product_attention and at::kFloat8 types.
#define LOONG_HAS_SDPA LOONG_TORCH_AT_LEAST(2, 0)

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include "loong/core/attention.h"

namespace loong {

// Softmax attention: q [B, H, L, D], k and v [B, H, S, D] -> [B, H, L, D].
// With `causal`, query i (the last L of S positions) sees keys j <= i + S - L,
// i.e. the mask is aligned to the bottom right, as a KV cache needs.
// `key_valid` (bool [B, S], optional) hides padding keys (left-padded prompts
// in a batch); a query still sees its own position, so a padding query's row
// is never empty. LibTorch 2.x has a fused kernel (flash / memory-efficient on
// CUDA); 1.13 computes it directly, and a long causal sequence (training) a
// block of queries at a time (attention.h).
inline at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                            const at::Tensor& key_valid = {}) {
  const int64_t L = q.size(2), S = k.size(2);
  const bool masked = causal && L > 1;
#if !LOONG_HAS_SDPA
  if (masked && !key_valid.defined() && L == S && L >= kBlockedAttentionFrom) return blocked_causal_attention(q, k, v);
#endif
  at::Tensor allowed;  // bool, broadcastable to [B, H, L, S]; undefined = everything
  if (key_valid.defined()) {
    auto self = at::zeros({L, S}, q.options().dtype(at::kBool));
    self.diagonal(S - L).fill_(true);
    allowed = key_valid.view({key_valid.size(0), 1, 1, S}) | self;
    if (masked) allowed = allowed & at::ones({L, S}, q.options().dtype(at::kBool)).tril(S - L);
  } else if (masked) {
    allowed = at::ones({L, S}, q.options().dtype(at::kBool)).tril(S - L);
  }
#if LOONG_HAS_SDPA
  if (!allowed.defined()) return at::scaled_dot_product_attention(q, k, v);
  if (!key_valid.defined() && L == S) return at::scaled_dot_product_attention(q, k, v, {}, 0.0, true);
  return at::scaled_dot_product_attention(q, k, v, allowed);
#else
  // Scaling q ([L, D]) costs less than scaling the scores ([L, S]).
  auto scores = at::matmul(q * (1.0 / std::sqrt(static_cast<double>(q.size(-1)))), k.transpose(-2, -1));
  if (allowed.defined()) scores.masked_fill_(allowed.logical_not(), -std::numeric_limits<float>::infinity());
  return at::matmul(at::softmax(scores, -1), v);
#endif
}

// bfloat16 autocast on CUDA for the scope of the guard (mixed-precision
// training). The C++ autocast API was renamed in LibTorch 2.4.
class CudaAutocast {
 public:
  explicit CudaAutocast(bool enable) : enabled_(enable) {
    if (!enabled_) return;
#if LOONG_TORCH_AT_LEAST(2, 4)
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
#endif
  }
  ~CudaAutocast() {
    if (!enabled_) return;
#if LOONG_TORCH_AT_LEAST(2, 4)
    at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
    at::autocast::set_enabled(false);
#endif
    at::autocast::clear_cache();
  }
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool enabled_;
};

}  // namespace loong
