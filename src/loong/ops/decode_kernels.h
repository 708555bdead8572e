// The inner loops of a decoding step's operations (decode_ops.h), on raw
// float arrays. Kept apart so that they can be compiled with their own
// floating-point flags (CMakeLists.txt) and without LibTorch's headers.
#pragma once
#include <cstdint>

namespace loong::detail {

// One query position of one row and key/value head: `rep` query vectors q
// [rep, D] (already scaled) against the first S keys and values k, v [S, D]
// (row-major). valid: S flags (false: a padding key, never read) or null; the
// last key, the query's own, is always read. out [rep, D]; scratch holds
// S floats.
void decode_attention_head(const float* q, const float* k, const float* v, const bool* valid, int64_t S,
                           int rep, int D, float* scratch, float* out);

// The elementwise parts of a decoding step, on R rows of D floats:
// out = x / sqrt(mean(x^2) + eps) (times weight [D] when not null), the
// statistics in float as RMSNorm takes them; out may be x.
void rms_rows(const float* x, int64_t R, int D, float eps, const float* weight, float* out);
// Each of `heads` vectors of D floats in x rotated in place: channel pair
// (2i, 2i+1) by the angle whose cosine and sine are cos[i], sin[i] (Meta's
// rotary embedding, as a complex product).
void rotate_pairs(float* x, int heads, int D, const float* cos, const float* sin);
// SwiGLU's gate: out [R, F] = silu(g[:, :F]) * g[:, F:], g [R, 2F].
void silu_gate(const float* g, int64_t R, int F, float* out);

// Columns [n0, n1) of y [M, N] = x [M, K] w [K, N] (+ residual [M, N] when not
// null), all row-major.
// Blocks [b0, b1) of kPackedColumns columns of y [M, N] = x [M, K] w (+
// residual when not null), w packed: block b holds columns [16 b, 16 b + 16)
// of the [K, N] matrix as K rows of 16 (the last block zero-padded), so that
// a block's weights are one stream and its sums stay in registers.
constexpr int64_t kPackedColumns = 16;
void packed_matmul_blocks(const float* x, const float* w, const float* residual, int64_t M, int64_t K, int64_t N,
                          int64_t b0, int64_t b1, float* y);
// The same with w in IEEE half precision (the bits of each float16), each
// weight converted exactly to float32 as it is read: half the bytes, and
// the same sums as packed_matmul_blocks on the float32 values, bit for bit.
// Only where packed_f16_supported() (x86-64 with AVX2 and F16C).
bool packed_f16_supported();
void packed_matmul_blocks_f16(const float* x, const uint16_t* w, const float* residual, int64_t M, int64_t K,
                              int64_t N, int64_t b0, int64_t b1, float* y);

void small_matmul_columns(const float* x, const float* w, const float* residual, int64_t M, int64_t K,
                          int64_t N, int64_t n0, int64_t n1, float* y);

// Columns [n0, n1) of y [M, N] = x [M, K] w^T (+ residual [M, N] when not
// null) with w [N, K] as nn::Linear keeps it (row-major): each output is the
// dot product of a row of x with a row of w, read once for all M rows.
void rows_matmul_columns(const float* x, const float* w, const float* residual, int64_t M, int64_t K, int64_t N,
                         int64_t n0, int64_t n1, float* y);
// The same with w in bfloat16 (the upper 16 bits of each float32), or in
// int8 with one float32 scale per row of w (y = scale[n] * x . w[n]): half
// or a quarter of the bytes to read.
void rows_matmul_columns_bf16(const float* x, const uint16_t* w, const float* residual, int64_t M, int64_t K,
                              int64_t N, int64_t n0, int64_t n1, float* y);
void rows_matmul_columns_int8(const float* x, const int8_t* w, const float* scale, const float* residual, int64_t M,
                              int64_t K, int64_t N, int64_t n0, int64_t n1, float* y);

// The tokenizer's frame decoder (tokenizer/frame_decoder.h): one frame's n
// values of y = y + a + b + r, each of a, b, r skipped where null, then
// silu(y) when `silu`, summed in float32 (in that order, up to -ffast-math's
// freedom) and stored once (for bfloat16, the uint16 bits, rounded to
// nearest even). One pass where the taps, the residual and SiLU were one
// pass each.
void sum_frame_f32(float* y, const float* a, const float* b, const float* r, int64_t n, bool silu);
void sum_frame_bf16(uint16_t* y, const uint16_t* a, const uint16_t* b, const uint16_t* r, int64_t n, bool silu);

}  // namespace loong::detail
