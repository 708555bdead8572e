// The language model's attention: one entry point, attention(), that picks
// LibTorch 2.x's fused kernel where the build has it, and otherwise a direct
// computation or, for long causal sequences, a block of queries at a time.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include <ATen/ATen.h>

#include "loong/core/torch_compat.h"

namespace loong {

// Query rows per block of blocked_causal_attention: scores of one block for a
// 4,352-position clip and 4 heads are 17 MB in f32.
constexpr int64_t kAttentionBlock = 256;
// The shortest sequence the model's attention (attention() below) computes in
// blocks. Forward and backward of 4 samples, 4 heads of 32, 2 threads
// (2026-12-02): 0.91-0.96x the dense time at 271 positions, 1.24-1.29x faster
// at 335, 1.4-1.6x at 400-640, 2.5-2.9x at 1,103.
constexpr int64_t kBlockedAttentionFrom = 320;

// Causal softmax self-attention, q, k, v [B, H, T, D] -> [B, H, T, D]; query i
// sees keys j <= i. The same result as masking a [T, T] score matrix, computed
// one block of `block` queries at a time against only the keys it may see, as
// FlashAttention (Dao et al. 2022) does in one kernel. Backward recomputes each
// block's scores from the saved row log-sum-exp instead of keeping them.
//
// For LibTorch builds without a fused attention kernel (1.13, the Debian CPU
// build: scaled_dot_product_attention came in 2.0). There, a dense causal
// attention over a 65-frame clip at 4x spatial downsampling (4,352 positions)
// builds [T, T] scores and probabilities for every layer and sample, keeps the
// probabilities for backward (300 MB a layer and sample at 4 heads), and
// computes every product in full to mask half of it away. Written with
// LibTorch operations: no package offers a CPU kernel for 1.13.
at::Tensor blocked_causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    int64_t block = kAttentionBlock);

// Softmax attention: q [B, H, L, D], k and v [B, H, S, D] -> [B, H, L, D].
// With `causal`, query i (the last L of S positions) sees keys j <= i + S - L,
// i.e. the mask is aligned to the bottom right, as a KV cache needs.
// `key_valid` (bool [B, S], optional) hides padding keys (left-padded prompts
// in a batch); a query still sees its own position, so a padding query's row
// is never empty. LibTorch 2.x has a fused kernel (flash / memory-efficient on
// CUDA); 1.13 computes it directly, and a long causal sequence (training) a
// block of queries at a time (blocked_causal_attention above).
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

}  // namespace loong
