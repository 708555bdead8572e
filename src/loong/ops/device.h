// What differs between devices, in one module: whether CUDA is there, waiting
// for it, generators that live on a device, and CUDA graphs (capture a fixed
// sequence of kernels once, replay it without the host launching each one).
// Builds without CUDA (Debian's LibTorch 1.13, LibTorch 2.x for the CPU) get
// the same interface; CudaGraph refuses there with a clear error, so callers
// test cuda_graphs_available() first.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <ATen/core/Generator.h>
#include <c10/core/Device.h>

namespace loong {

// True when this build has CUDA and a device is present.
bool cuda_device_present();
// Waits for the device's queued work (no-op on the CPU); for timings.
void synchronize(c10::Device device);
// A generator for `device` seeded with `seed`: sampling on the device draws
// there, without a copy to the host each step.
at::Generator device_generator(c10::Device device, uint64_t seed);
// Peak bytes allocated on a CUDA device since the last reset (LibTorch's
// caching allocator); -1 on the CPU, where the process's RSS says it.
int64_t device_peak_bytes(c10::Device device);
void reset_device_peak(c10::Device device);
// True when this build can capture CUDA graphs and a device is present.
bool cuda_graphs_available();
// Whether `device` computes bfloat16 convolutions and products natively, so
// that they run faster than in float32: CUDA devices, and CPUs with AMX-BF16
// or AVX-512 BF16 (which oneDNN uses; elsewhere bfloat16 is emulated and
// slower). The tokenizer decodes generated clips in bfloat16 where this holds.
bool native_bf16(c10::Device device);

// One captured sequence of CUDA kernels. capture() records what `body`
// launches (nothing runs then); replay() runs it again on the current stream,
// with the same tensors: inputs are changed in place between replays. Graphs
// that share `pool_of` share its private memory pool. Generators that `body`
// draws from are registered so each replay advances them.
class CudaGraph {
 public:
  CudaGraph();
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;
  void capture(const std::function<void()>& body, const std::vector<at::Generator>& generators,
               const CudaGraph* pool_of = nullptr);
  void replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loong
