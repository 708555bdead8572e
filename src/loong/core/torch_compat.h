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

// bfloat16 autocast on a device type for the scope of the guard: on CUDA
// for mixed-precision training and decoding, on the CPU for the tokenizer's
// decode where bfloat16 is native (oneDNN's convolutions and products). The
// C++ autocast API was renamed in LibTorch 2.4.
class Bf16Autocast {
 public:
  Bf16Autocast(c10::DeviceType type, bool enable) : type_(type), enabled_(enable) {
    if (enabled_) set(type_, true);
  }
  ~Bf16Autocast() {
    if (!enabled_) return;
    set(type_, false);
    at::autocast::clear_cache();
  }
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;

 private:
  static void set(c10::DeviceType type, bool on) {
#if LOONG_TORCH_AT_LEAST(2, 4)
    if (on) at::autocast::set_autocast_dtype(type, at::kBFloat16);
    at::autocast::set_autocast_enabled(type, on);
#else
    if (type == c10::DeviceType::CUDA) {
      if (on) at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(on);
    } else {
      if (on) at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(on);
    }
#endif
  }
  c10::DeviceType type_;
  bool enabled_;
};

class CudaAutocast : public Bf16Autocast {
 public:
  explicit CudaAutocast(bool enable) : Bf16Autocast(c10::DeviceType::CUDA, enable) {}
  // Whether bf16 autocast on CUDA is on now (activation checkpointing
  // recomputes a block as its forward pass ran).
  static bool active() {
#if LOONG_TORCH_AT_LEAST(2, 4)
    return at::autocast::is_autocast_enabled(at::kCUDA);
#else
    return at::autocast::is_enabled();
#endif
  }
};

}  // namespace loong
