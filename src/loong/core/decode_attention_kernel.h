// The inner loop of a decoding step's attention, on raw float arrays.
// Kept apart from attention.cpp so that it can be compiled with its own
// floating-point flags (CMakeLists.txt) without LibTorch's headers.
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

}  // namespace loong::detail
