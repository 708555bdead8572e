// Causal self-attention over long sequences, a block of queries at a time.
#pragma once
#include <cstdint>

#include <ATen/ATen.h>

namespace loong {

// Query rows per block of blocked_causal_attention: scores of one block for a
// 4,352-position clip and 4 heads are 17 MB in f32.
constexpr int64_t kAttentionBlock = 256;
// The shortest sequence the model's attention (torch_compat.h) computes in
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

}  // namespace loong
