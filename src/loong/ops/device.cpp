#include "loong/ops/device.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/cuda.h>

#include "loong/core/error.h"
#include "loong/core/torch_compat.h"

#if LOONG_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace loong {

bool cuda_device_present() {
#if LOONG_WITH_CUDA
  return torch::cuda::is_available();
#else
  return false;
#endif
}

void synchronize(c10::Device device) {
#if LOONG_WITH_CUDA
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
#endif
}

at::Generator device_generator(c10::Device device, uint64_t seed) {
#if LOONG_WITH_CUDA
  if (device.is_cuda()) {
    auto g = at::cuda::detail::createCUDAGenerator(device.has_index() ? device.index() : -1);
    g.set_current_seed(seed);
    return g;
  }
#endif
  if (!device.is_cpu()) fail("--device", "no generator for device " + device.str() + " in this build");
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

int64_t device_peak_bytes(c10::Device device) {
#if LOONG_WITH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
    return stats.allocated_bytes[0].peak;  // [0]: StatType::AGGREGATE, every pool
  }
#endif
  return -1;
}

void reset_device_peak(c10::Device device) {
#if LOONG_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
#endif
}

bool cuda_graphs_available() { return LOONG_HAS_CUDA_GRAPHS && cuda_device_present(); }

bool native_bf16(c10::Device device) {
  if (device.is_cuda()) return true;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  // oneDNN is what computes bfloat16 convolutions natively; without it they
  // take LibTorch's slow path.
  static const bool cpu = (__builtin_cpu_init(), __builtin_cpu_supports("amx-bf16") ||
                                                     __builtin_cpu_supports("avx512bf16")) &&
                          at::hasMKLDNN();
  return device.is_cpu() && cpu && at::globalContext().userEnabledMkldnn();
#else
  return false;
#endif
}

#if LOONG_WITH_CUDA && LOONG_HAS_CUDA_GRAPHS
struct CudaGraph::Impl {
  at::cuda::CUDAGraph graph;  // its constructor needs a device: made in capture()
  bool captured = false;
};

CudaGraph::CudaGraph() = default;
CudaGraph::~CudaGraph() = default;

void CudaGraph::capture(const std::function<void()>& body, const std::vector<at::Generator>& generators,
                        const CudaGraph* pool_of) {
  if (!cuda_device_present()) fail("CUDA graphs", "no CUDA device present");
  if (impl_) fail("CUDA graphs", "this graph was already captured");
  if (pool_of && !(pool_of->impl_ && pool_of->impl_->captured)) fail("CUDA graphs", "the pool's graph was not captured");
  impl_ = std::make_unique<Impl>();
  // Capture runs on a side stream that first waits for the work queued so far.
  auto current = at::cuda::getCurrentCUDAStream();
  auto side = at::cuda::getStreamFromPool();
  at::cuda::CUDAEvent queued;
  queued.record(current);
  queued.block(side);
  {
    c10::cuda::CUDAStreamGuard guard(side);
    for (const auto& g : generators) impl_->graph.register_generator_state(g);
    impl_->graph.capture_begin(pool_of ? pool_of->impl_->graph.pool() : decltype(impl_->graph.pool()){0, 0});
    try {
      body();
    } catch (...) {
      // End the capture so the stream and the allocator leave capture mode;
      // the caller gets the error and this graph stays unusable.
      try {
        impl_->graph.capture_end();
      } catch (...) {
      }
      impl_->graph.reset();
      throw;
    }
    impl_->graph.capture_end();
    impl_->captured = true;
  }
  at::cuda::CUDAEvent captured;
  captured.record(side);
  captured.block(current);
}

void CudaGraph::replay() {
  if (!impl_ || !impl_->captured) fail("CUDA graphs", "nothing captured");
  impl_->graph.replay();
}
#else
struct CudaGraph::Impl {};
CudaGraph::CudaGraph() = default;
CudaGraph::~CudaGraph() = default;
void CudaGraph::capture(const std::function<void()>&, const std::vector<at::Generator>&, const CudaGraph*) {
  fail("CUDA graphs", "this build has no CUDA graphs (LibTorch " + std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                          (LOONG_WITH_CUDA ? "" : ", built without CUDA") + ")");
}
void CudaGraph::replay() { fail("CUDA graphs", "nothing captured"); }
#endif

}  // namespace loong
