// The one place where LibTorch version differences are handled. Code must build
// against Debian's LibTorch 1.13 (CPU) and LibTorch 2.x (CUDA).
#pragma once
#include <torch/version.h>

#define LOONG_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||        \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// LibTorch 2.0 added at::scaled_dot_product_attention and at::kFloat8 types.
#define LOONG_HAS_SDPA LOONG_TORCH_AT_LEAST(2, 0)
