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

// Columns [n0, n1) of y [M, N] = x [M, K] w [K, N] (+ residual [M, N] when not
// null), all row-major.
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

}  // namespace loong::detail
