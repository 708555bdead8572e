// The operations of one decoding step on the CPU, written for a batch of a
// few rows (decode_kernels.cpp says why they are written by hand).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace loong {

// Whether decode_attention takes these caches: contiguous float32 CPU tensors
// [B, Hkv, C, D] of one shape, and a contiguous bool CPU mask or none.
bool decode_attention_supported(const at::Tensor& k, const at::Tensor& v, const at::Tensor& valid);

// The attention of one decoding step: each row's one query position against
// the first S positions of its key/value cache. q [B, H, D]; k, v [B, Hkv, C,
// D] with C >= S; query head h reads key/value head h / (H / Hkv), as
// repeat_kv lays them out. valid: bool [B, C] (false: padding, never read; the
// query's own position S - 1 always is) or undefined. Returns softmax(q k^T *
// scale) v, [B, H, D], in one pass over the cache.
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t S,
                            const at::Tensor& valid, double scale);

// How many threads a parallel loop of these operations runs on now (at most
// at::get_num_threads()): 1 where the file was built without OpenMP, in
// which case at::parallel_for runs its loops on the calling thread.
int decode_loop_threads();

// Whether small_matmul takes this weight: a contiguous float32 CPU tensor.
bool small_matmul_supported(const at::Tensor& w);

// x [M, K] (float32, CPU) times w [K, N] (plus residual [M, N] when defined): addmm for the
// few rows of a decoding step, reading w once and without copying it into a
// BLAS layout first.
at::Tensor small_matmul(const at::Tensor& x, const at::Tensor& w, const at::Tensor& residual = {});

// The same with w [N, K] as nn::Linear keeps it: x w^T (+ residual), that is
// torch::linear without a bias. Large models decode this way, on their own
// weights (a transposed copy would double their memory); the rows of w are
// split over the threads.
//
// w may also be bfloat16, or int8 with `scale` float32 [N] (y = scale[n] *
// x . w[n]; quantize_rows makes both): half or a quarter of the bytes to read,
// which is what a large model's decoding step waits on.
at::Tensor rows_matmul(const at::Tensor& x, const at::Tensor& w, const at::Tensor& residual = {},
                       const at::Tensor& scale = {});

// A weight [N, K] for rows_matmul in fewer bytes: "bf16" (rounded to the
// nearest bfloat16) or "int8" (symmetric, one scale per row: max |w[n]| / 127).
// "f32" gives w itself. Throws c10::Error for another name.
struct RowsWeight {
  at::Tensor w, scale;  // scale: int8 only
};
RowsWeight quantize_rows(const at::Tensor& w, const std::string& type);

}  // namespace loong
