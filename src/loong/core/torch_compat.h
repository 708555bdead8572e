// Where LibTorch version differences are named: the version test, feature
// macros and small shims. Code must build against Debian's LibTorch 1.13
// (CPU) and LibTorch 2.x (CUDA). A subsystem whose code differs by version
// keeps it in one module of its own that tests these macros (ops/attention.h).
#pragma once
#include <torch/version.h>

#define LOONG_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||        \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// LibTorch 2.0 added at::scaled_dot_product_attention (used by ops/attention.h)
// and at::kFloat8 types.
#define LOONG_HAS_SDPA LOONG_TORCH_AT_LEAST(2, 0)
// at::_fused_adamw_ (one kernel for every parameter) has a CUDA kernel from
// 2.0 and a CPU kernel from 2.4 (used by ops/adamw.h).
#define LOONG_HAS_FUSED_ADAMW LOONG_TORCH_AT_LEAST(2, 4)
// CMake defines LOONG_WITH_CUDA=1 when LibTorch was built with CUDA.
#ifndef LOONG_WITH_CUDA
#define LOONG_WITH_CUDA 0
#endif
// CUDA graphs that replay draws from a generator of our own
// (CUDAGraph::register_generator_state(Generator), used by ops/device.h).
#define LOONG_HAS_CUDA_GRAPHS (LOONG_WITH_CUDA && LOONG_TORCH_AT_LEAST(2, 6))

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

namespace loong {

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
  // Whether bf16 autocast on CUDA is on now (activation checkpointing
  // recomputes a block as its forward pass ran).
  static bool active() {
#if LOONG_TORCH_AT_LEAST(2, 4)
    return at::autocast::is_autocast_enabled(at::kCUDA);
#else
    return at::autocast::is_enabled();
#endif
  }
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool enabled_;
};

}  // namespace loong
