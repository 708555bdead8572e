// The operations of one decoding step on the CPU, written for a batch of a
// few rows (decode_kernels.cpp says why they are written by hand), and the
// tokenizer frame decoder's one-pass sums (here for the same reason: this
// file is compiled with OpenMP, so at::parallel_for shares out their work).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
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

// The same on raw float32 arrays, for K query positions of each row at once:
// q [B, K, H, D] (already scaled), k and v [B, Hkv, C, D], valid [B,
// valid_stride] flags or null. Query j of row b attends to keys [0, p + j]
// (padding skipped, its own key always read). out [B, K, H, D]. For a
// decoding step written without LibTorch's operations (lm::DecodeStep on small
// models), where the fixed cost of each operation is most of a step.
void decode_attention_into(const float* q, const float* k, const float* v, const bool* valid,
                           int64_t valid_stride, int64_t B, int64_t K, int64_t H, int64_t Hkv, int64_t C,
                           int64_t D, int64_t p, float* out);

// How many threads a parallel loop of these operations runs on now (at most
// at::get_num_threads()): 1 where the file was built without OpenMP, in
// which case at::parallel_for runs its loops on the calling thread.
int decode_loop_threads();

// f(worker, workers, sync) on up to `threads` threads of one OpenMP team
// (workers: how many it got); sync() is the team's barrier, which every
// worker must reach as often as the others. One thread (no OpenMP, or
// already inside a parallel region): f(0, 1, a sync that does nothing).
// f must not throw. Here, not in the caller, since OpenMP's pragmas work
// only in a file compiled with OpenMP (CMakeLists.txt).
void run_team(int threads, const std::function<void(int, int, const std::function<void()>&)>& f);

// decode_attention_into's tasks [t0, t1) of its B * Hkv (row b = t / Hkv,
// key/value head t % Hkv), on the calling thread. `scratch`: p + K floats of
// the caller's (a team's threads each pass their own: a heap allocation per
// layer and thread, from the one arena keep_freed_memory leaves, made the
// minute's decode 25% slower, docs/benchmarks.md), or null to allocate.
void decode_attention_tasks(const float* q, const float* k, const float* v, const bool* valid, int64_t valid_stride,
                            int64_t K, int64_t H, int64_t Hkv, int64_t C, int64_t D, int64_t p, int64_t t0,
                            int64_t t1, float* out, float* scratch = nullptr);

// The sum of a causal convolution's temporal taps, for the tokenizer's frame
// decoder (tokenizer/frame_decoder.h), in one pass: frames [T, ...] of one
// item, float32 or bfloat16, every tensor frame-major (contiguous or
// channels-last). y (the newest tap's output, its bias included) gets, frame
// t, older[s - 1] frame t - s for each shift s <= older.size() where t >= s
// (older[s - 1] has T - s frames, or is undefined when T <= s), then
// residual frame t when defined, then SiLU when `silu`; summed in float32 in
// that order and rounded once. At most two older taps. Pieces of frames are
// shared out over LibTorch's threads (so a clip of one frame uses them all).
bool sum_frame_taps_supported(const at::Tensor& y, const std::vector<at::Tensor>& older, const at::Tensor& residual);
void sum_frame_taps(const at::Tensor& y, const std::vector<at::Tensor>& older, const at::Tensor& residual, bool silu);

// Whether small_matmul takes this weight: a contiguous float32 CPU tensor.
bool small_matmul_supported(const at::Tensor& w);

// x [M, K] (float32, CPU) times w [K, N] (plus residual [M, N] when defined): addmm for the
// few rows of a decoding step, reading w once and without copying it into a
// BLAS layout first.
at::Tensor small_matmul(const at::Tensor& x, const at::Tensor& w, const at::Tensor& residual = {});

// w [K, N] (float32, CPU) in the layout packed_matmul_into reads:
// [ceil(N / 16), K, 16], each block of 16 columns one stream, zero-padded.
// f16_if_exact: in float16 where every weight is one (finite, and equal to
// itself rounded to float16, as the weights of a bundle stored in f16 are)
// and the CPU converts float16 in its vector registers: half the bytes a
// product reads, and the same results.
at::Tensor pack_columns(const at::Tensor& w, bool f16_if_exact = false);
// A float32 packed weight in float16 where that is exact and supported, as
// pack_columns(w, true) gives it; else the weight itself.
at::Tensor packed_f16_if_exact(const at::Tensor& packed);
// x [M, K] times the packed w (plus residual [M, N] when not null, not y):
// small_matmul on raw arrays with each block's sums held in registers, so
// that a weight is read once for up to four rows of x.
void packed_matmul_into(const float* x, const at::Tensor& packed, const float* residual, int64_t M, int64_t K,
                        int64_t N, float* y);
// Column blocks [b0, b1) of that product, on the calling thread.
void packed_matmul_range(const float* x, const at::Tensor& packed, const float* residual, int64_t M, int64_t K,
                         int64_t N, int64_t b0, int64_t b1, float* y);

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
