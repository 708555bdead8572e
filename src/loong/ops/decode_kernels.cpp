// Written by hand because a decoding step multiplies a batch of one or two
// rows (a prompt, and its unguided twin) by the model's weights and attends
// one query to a cache of up to a few thousand keys, and LibTorch's general
// operations spend most of such a step on themselves rather than on the
// arithmetic: each product goes to a BLAS that first copies the whole weight
// matrix or cache into its packed layout, the padding mask and the softmax are
// further passes, and each operation has its own dispatch and thread hand-off
// (docs/benchmarks.md, "Decode attention written for one query, and the
// decode step's products"). These loops read each weight, key and value once.
//
// Compiled with -ffast-math (CMakeLists.txt): the dot products may then be
// summed in any order, which lets the compiler vectorise them, and expf goes
// to glibc's vector variants. Nothing here depends on infinities or NaNs:
// padding keys get a finite score far below any real one and so a weight of 0.
#include "loong/ops/decode_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace loong::detail {

// An AVX2 copy of the loops beside the baseline x86-64 one, chosen when the
// library loads (function multiversioning), so one binary runs everywhere.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LOONG_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LOONG_VECTOR_CLONES
#endif

namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LOONG_AVX2_SCORES 1
// The scores of one query of 32 channels against S keys [S, 32], eight keys
// a turn: each key's products summed into one vector, then the eight vectors
// reduced together (6 pairwise additions and 2 lane swaps for eight keys,
// against about 5 shuffles and additions for each key alone). Only where the
// CPU has AVX2 and FMA (checked by the caller).
__attribute__((target("avx2,fma"))) void scores32_avx2(const float* __restrict q, const float* __restrict k, int64_t S,
                                                      float* __restrict s) {
  const __m256 q0 = _mm256_loadu_ps(q), q1 = _mm256_loadu_ps(q + 8), q2 = _mm256_loadu_ps(q + 16),
               q3 = _mm256_loadu_ps(q + 24);
  int64_t j = 0;
  for (; j + 8 <= S; j += 8) {
    __m256 a[8];
    for (int i = 0; i < 8; ++i) {
      const float* kj = k + (j + i) * 32;
      const __m256 x = _mm256_fmadd_ps(q2, _mm256_loadu_ps(kj + 16), _mm256_mul_ps(q0, _mm256_loadu_ps(kj)));
      const __m256 y = _mm256_fmadd_ps(q3, _mm256_loadu_ps(kj + 24), _mm256_mul_ps(q1, _mm256_loadu_ps(kj + 8)));
      a[i] = _mm256_add_ps(x, y);
    }
    // Per 128-bit lane: pairs, then fours, of keys 0-3 and 4-7; the lanes' halves added last.
    const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    _mm256_storeu_ps(s + j, _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31)));
  }
  for (; j < S; ++j) {
    float acc = 0;
    for (int d = 0; d < 32; ++d) acc += q[d] * k[j * 32 + d];
    s[j] = acc;
  }
}
const bool kAvx2 = (__builtin_cpu_init(), __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
#endif

// One query vector at a time against the keys, then against the values, so
// that its D sums stay in registers (D fixed at compile time: the head widths
// models use) instead of going through memory once a key.
template <int D>
LOONG_VECTOR_CLONES void head(const float* __restrict q, const float* __restrict k, const float* __restrict v,
                              const bool* __restrict valid, int64_t S, int rep, int d_runtime,
                              float* __restrict scratch, float* __restrict out) {
  const int dims = D > 0 ? D : d_runtime;
  constexpr float kHidden = -1e30f;  // exp(kHidden - max) is 0 in float
  for (int r = 0; r < rep; ++r) {
    const float* qr = q + r * dims;
    float* s = scratch;
#ifdef LOONG_AVX2_SCORES
    if (D == 32 && kAvx2) {
      scores32_avx2(qr, k, S, s);
    } else
#endif
    {
      for (int64_t j = 0; j < S; ++j) {
        const float* kj = k + j * dims;
        float acc = 0;
        for (int d = 0; d < dims; ++d) acc += qr[d] * kj[d];
        s[j] = acc;
      }
    }
    if (valid != nullptr)
      for (int64_t j = 0; j + 1 < S; ++j) s[j] = valid[j] ? s[j] : kHidden;
    float m = s[S - 1];
    for (int64_t j = 0; j < S; ++j) m = s[j] > m ? s[j] : m;
    float sum = 0;
    for (int64_t j = 0; j < S; ++j) {
      s[j] = expf(s[j] - m);
      sum += s[j];
    }
    float acc[D > 0 ? D : 1];
    if constexpr (D > 0) {
      for (int d = 0; d < D; ++d) acc[d] = 0;
      for (int64_t j = 0; j < S; ++j) {
        const float p = s[j];
        const float* vj = v + j * D;
        for (int d = 0; d < D; ++d) acc[d] += p * vj[d];
      }
      for (int d = 0; d < D; ++d) out[r * D + d] = acc[d] / sum;
    } else {
      float* o = out + r * dims;
      for (int d = 0; d < dims; ++d) o[d] = 0;
      for (int64_t j = 0; j < S; ++j)
        for (int d = 0; d < dims; ++d) o[d] += s[j] * v[j * dims + d];
      for (int d = 0; d < dims; ++d) o[d] /= sum;
    }
  }
}

}  // namespace

void decode_attention_head(const float* q, const float* k, const float* v, const bool* valid, int64_t S,
                           int rep, int D, float* scratch, float* out) {
  switch (D) {
    case 32:
      return head<32>(q, k, v, valid, S, rep, D, scratch, out);
    case 64:
      return head<64>(q, k, v, valid, S, rep, D, scratch, out);
    case 128:
      return head<128>(q, k, v, valid, S, rep, D, scratch, out);
    default:
      return head<0>(q, k, v, valid, S, rep, D, scratch, out);
  }
}

LOONG_VECTOR_CLONES
void rms_rows(const float* x, int64_t R, int D, float eps, const float* weight, float* out) {
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * D;
    float* o = out + r * D;
    float ss = 0;
    for (int d = 0; d < D; ++d) ss += xr[d] * xr[d];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(D) + eps);
    if (weight != nullptr)
      for (int d = 0; d < D; ++d) o[d] = xr[d] * inv * weight[d];
    else
      for (int d = 0; d < D; ++d) o[d] = xr[d] * inv;
  }
}

LOONG_VECTOR_CLONES
void rotate_pairs(float* x, int heads, int D, const float* cos, const float* sin) {
  for (int h = 0; h < heads; ++h) {
    float* xh = x + h * D;
    for (int i = 0; i < D / 2; ++i) {
      const float a = xh[2 * i], b = xh[2 * i + 1];
      xh[2 * i] = a * cos[i] - b * sin[i];
      xh[2 * i + 1] = a * sin[i] + b * cos[i];
    }
  }
}

LOONG_VECTOR_CLONES
void silu_gate(const float* g, int64_t R, int F, float* out) {
  for (int64_t r = 0; r < R; ++r) {
    const float* a = g + r * 2 * F;
    const float* b = a + F;
    float* o = out + r * F;
    // exp's argument held below overflow: this file assumes no infinities.
    for (int f = 0; f < F; ++f) o[f] = a[f] / (1.0f + expf(std::min(-a[f], 80.0f))) * b[f];
  }
}

LOONG_VECTOR_CLONES
void small_matmul_columns(const float* __restrict x, const float* __restrict w,
                          const float* __restrict residual, int64_t M, int64_t K, int64_t N, int64_t n0,
                          int64_t n1, float* __restrict y) {
  for (int64_t m = 0; m < M; ++m) {
    float* ym = y + m * N;
    for (int64_t n = n0; n < n1; ++n) ym[n] = residual ? residual[m * N + n] : 0.0f;
  }
  // Row k of w once for every row of x, added into the rows of y.
  for (int64_t k = 0; k < K; ++k) {
    const float* wk = w + k * N;
    for (int64_t m = 0; m < M; ++m) {
      const float a = x[m * K + k];
      float* ym = y + m * N;
      for (int64_t n = n0; n < n1; ++n) ym[n] += a * wk[n];
    }
  }
}

// The helpers below are always inlined into the clones, so the vector
// type's calling convention never matters.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace {

// Eight floats as one vector (GCC's and Clang's vector extension: each clone
// below compiles it to its own instructions, AVX2 or SSE2).
typedef float Vec8 __attribute__((vector_size(32)));

__attribute__((always_inline)) inline Vec8 load8(const float* p) {
  Vec8 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

__attribute__((always_inline)) inline float sum8(Vec8 v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }

// Weights as stored, eight at a time into a Vec8, and one at a time.
struct F32Weights {
  typedef float T;
  __attribute__((always_inline)) static Vec8 load(const float* p) { return load8(p); }
  __attribute__((always_inline)) static float one(const float* p) { return *p; }
};
// The widening loads are written as shuffles: GCC 12 turns
// __builtin_convertvector from 8- or 16-bit lanes into one scalar
// conversion a lane, while these compile to two or three instructions.
struct Bf16Weights {  // bfloat16: the upper half of a float32
  typedef uint16_t T;
  typedef uint16_t U16x8 __attribute__((vector_size(16)));
  typedef uint16_t U16x16 __attribute__((vector_size(32)));
  __attribute__((always_inline)) static Vec8 load(const uint16_t* p) {
    U16x8 h;
    __builtin_memcpy(&h, p, sizeof h);
    const U16x8 zero = {};
    // Each lane's low half 0, high half the bfloat16 (little-endian).
    const U16x16 s = __builtin_shufflevector(zero, h, 0, 8, 0, 9, 0, 10, 0, 11, 0, 12, 0, 13, 0, 14, 0, 15);
    Vec8 v;
    __builtin_memcpy(&v, &s, sizeof v);
    return v;
  }
  __attribute__((always_inline)) static float one(const uint16_t* p) {
    const uint32_t bits = static_cast<uint32_t>(*p) << 16;
    float f;
    __builtin_memcpy(&f, &bits, sizeof f);
    return f;
  }
};
struct Int8Weights {  // int8; the row's scale is applied to the finished sum
  typedef int8_t T;
  typedef int8_t I8x16 __attribute__((vector_size(16)));
  typedef int8_t I8x32 __attribute__((vector_size(32)));
  typedef int32_t I32x8 __attribute__((vector_size(32)));
  typedef int64_t I64x2 __attribute__((vector_size(16)));
  __attribute__((always_inline)) static Vec8 load(const int8_t* p) {
    int64_t bytes;
    __builtin_memcpy(&bytes, p, sizeof bytes);
    const I64x2 twice = {bytes, bytes};
    I8x16 q;
    __builtin_memcpy(&q, &twice, sizeof q);
    // Byte i in all four bytes of lane i; shifting the lane right by 24
    // (arithmetic) leaves it sign-extended.
    const I8x32 s = __builtin_shufflevector(q, q, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5,
                                            5, 6, 6, 6, 6, 7, 7, 7, 7);
    I32x8 w;
    __builtin_memcpy(&w, &s, sizeof w);
    return __builtin_convertvector(w >> 24, Vec8);
  }
  __attribute__((always_inline)) static float one(const int8_t* p) { return static_cast<float>(*p); }
};

// The dot products of MB rows of x with NB rows of w, into y [MB rows of
// stride N, NB columns], each times scale[j] when scale is not null: MB x NB
// x U sums, each in its own vector register (U of them per pair over
// consecutive groups of 8 columns), so that no sum waits on the last
// addition to it and each load serves several products.
template <class Wt, int MB, int NB, int U>
__attribute__((always_inline)) inline void dots(const float* __restrict x, const typename Wt::T* __restrict w,
                                                const float* __restrict scale, int64_t K, int64_t N,
                                                float* __restrict y) {
  Vec8 acc[U][MB][NB] = {};
  int64_t k = 0;
  for (; k + 8 * U <= K; k += 8 * U)
    for (int u = 0; u < U; ++u) {
      Vec8 wv[NB];
      for (int j = 0; j < NB; ++j) wv[j] = Wt::load(w + j * K + k + 8 * u);
      for (int i = 0; i < MB; ++i) {
        const Vec8 xv = load8(x + i * K + k + 8 * u);
        for (int j = 0; j < NB; ++j) acc[u][i][j] += xv * wv[j];
      }
    }
  for (; k + 8 <= K; k += 8) {
    Vec8 wv[NB];
    for (int j = 0; j < NB; ++j) wv[j] = Wt::load(w + j * K + k);
    for (int i = 0; i < MB; ++i) {
      const Vec8 xv = load8(x + i * K + k);
      for (int j = 0; j < NB; ++j) acc[0][i][j] += xv * wv[j];
    }
  }
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < NB; ++j) {
      for (int u = 1; u < U; ++u) acc[0][i][j] += acc[u][i][j];
      float s = sum8(acc[0][i][j]);
      for (int64_t r = k; r < K; ++r) s += x[i * K + r] * Wt::one(w + j * K + r);
      y[i * N + j] = scale ? s * scale[j] : s;
    }
}

// Rows of x in blocks of four (then the three, two or one left) against NB
// rows of w.
template <class Wt, int NB, int U>
__attribute__((always_inline)) inline void dots_rows(const float* __restrict x, const typename Wt::T* __restrict w,
                                                     const float* __restrict scale, int64_t M, int64_t K, int64_t N,
                                                     float* __restrict y) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) dots<Wt, 4, NB, U>(x + m * K, w, scale, K, N, y + m * N);
  switch (M - m) {
    case 3:
      return dots<Wt, 3, NB, U>(x + m * K, w, scale, K, N, y + m * N);
    case 2:
      return dots<Wt, 2, NB, U>(x + m * K, w, scale, K, N, y + m * N);
    case 1:
      return dots<Wt, 1, NB, U>(x + m * K, w, scale, K, N, y + m * N);
  }
}

// One or two rows (a decoding step, guided or not) are bound by reading w:
// one row of w at a time, four sums per product so that the additions keep
// up with memory. More rows (speculation scores several positions) are bound
// by arithmetic: three rows of w against blocks of four rows of x, so that
// each vector loaded serves three or four products (the fastest blocking on
// this machine, docs/benchmarks.md).
template <class Wt>
__attribute__((always_inline)) inline void rows_columns(const float* __restrict x, const typename Wt::T* __restrict w,
                                                        const float* __restrict scale,
                                                        const float* __restrict residual, int64_t M, int64_t K,
                                                        int64_t N, int64_t n0, int64_t n1, float* __restrict y) {
  int64_t n = n0;
  const auto at = [&](int64_t c) { return scale ? scale + c : nullptr; };
  if (M <= 2) {
    for (; n < n1; ++n) dots_rows<Wt, 1, 4>(x, w + n * K, at(n), M, K, N, y + n);
  } else {
    for (; n + 3 <= n1; n += 3) dots_rows<Wt, 3, 1>(x, w + n * K, at(n), M, K, N, y + n);
    for (; n < n1; ++n) dots_rows<Wt, 1, 1>(x, w + n * K, at(n), M, K, N, y + n);
  }
  if (residual)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t c = n0; c < n1; ++c) y[m * N + c] += residual[m * N + c];
}

}  // namespace

LOONG_VECTOR_CLONES
void rows_matmul_columns(const float* __restrict x, const float* __restrict w, const float* __restrict residual,
                         int64_t M, int64_t K, int64_t N, int64_t n0, int64_t n1, float* __restrict y) {
  rows_columns<F32Weights>(x, w, nullptr, residual, M, K, N, n0, n1, y);
}

LOONG_VECTOR_CLONES
void rows_matmul_columns_bf16(const float* __restrict x, const uint16_t* __restrict w,
                              const float* __restrict residual, int64_t M, int64_t K, int64_t N, int64_t n0,
                              int64_t n1, float* __restrict y) {
  rows_columns<Bf16Weights>(x, w, nullptr, residual, M, K, N, n0, n1, y);
}

LOONG_VECTOR_CLONES
void rows_matmul_columns_int8(const float* __restrict x, const int8_t* __restrict w, const float* __restrict scale,
                              const float* __restrict residual, int64_t M, int64_t K, int64_t N, int64_t n0,
                              int64_t n1, float* __restrict y) {
  rows_columns<Int8Weights>(x, w, scale, residual, M, K, N, n0, n1, y);
}

namespace {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LOONG_F16C_BLOCKS 1
// IEEE half-precision weights, eight at a time, each converted exactly to
// float32 by F16C's vcvtph2ps. The builtin needs F16C in the function it
// ends up in: it is only ever inlined into packed_matmul_blocks_f16, which
// is built for AVX2 and F16C and called where the CPU has them.
struct F16Weights {
  typedef uint16_t T;
  typedef short I16x8 __attribute__((vector_size(16)));
  __attribute__((always_inline)) static Vec8 load(const uint16_t* p) {
    I16x8 h;
    __builtin_memcpy(&h, p, sizeof h);
    return __builtin_ia32_vcvtph2ps256(h);
  }
};
#endif

// MB rows of x against one block of kPackedColumns columns of a packed w:
// the 2 MB sums of eight stay in registers over all K, so each weight is
// loaded once for the MB rows and no partial sum goes through memory.
template <int MB, class Wt>
__attribute__((always_inline)) inline void packed_block(const float* __restrict x, const typename Wt::T* __restrict wb,
                                                        const float* __restrict residual, int64_t K, int64_t N,
                                                        int64_t n, int64_t width, float* __restrict y) {
  static_assert(kPackedColumns == 16, "two vectors of eight a block");
  Vec8 acc[MB][2];
  for (int i = 0; i < MB; ++i) acc[i][0] = acc[i][1] = Vec8{};
  for (int64_t k = 0; k < K; ++k) {
    const Vec8 w0 = Wt::load(wb + k * 16), w1 = Wt::load(wb + k * 16 + 8);
    for (int i = 0; i < MB; ++i) {
      const float a = x[i * K + k];
      acc[i][0] += a * w0;
      acc[i][1] += a * w1;
    }
  }
  for (int i = 0; i < MB; ++i) {
    float* yi = y + i * N + n;
    const float* ri = residual ? residual + i * N + n : nullptr;
    if (width == 16) {
      const Vec8 y0 = acc[i][0] + (ri ? load8(ri) : Vec8{}), y1 = acc[i][1] + (ri ? load8(ri + 8) : Vec8{});
      __builtin_memcpy(yi, &y0, sizeof y0);
      __builtin_memcpy(yi + 8, &y1, sizeof y1);
    } else {
      for (int64_t c = 0; c < width; ++c) yi[c] = acc[i][c / 8][c % 8] + (ri ? ri[c] : 0.0f);
    }
  }
}

template <class Wt>
__attribute__((always_inline)) inline void packed_blocks(const float* __restrict x, const typename Wt::T* __restrict w,
                                                         const float* __restrict residual, int64_t M, int64_t K,
                                                         int64_t N, int64_t b0, int64_t b1, float* __restrict y) {
  for (int64_t b = b0; b < b1; ++b) {
    const typename Wt::T* wb = w + b * K * kPackedColumns;
    const int64_t n = b * kPackedColumns, width = std::min<int64_t>(kPackedColumns, N - n);
    int64_t m = 0;
    for (; m + 4 <= M; m += 4)
      packed_block<4, Wt>(x + m * K, wb, residual ? residual + m * N : nullptr, K, N, n, width, y + m * N);
    const float* r = residual ? residual + m * N : nullptr;
    switch (M - m) {
      case 3: packed_block<3, Wt>(x + m * K, wb, r, K, N, n, width, y + m * N); break;
      case 2: packed_block<2, Wt>(x + m * K, wb, r, K, N, n, width, y + m * N); break;
      case 1: packed_block<1, Wt>(x + m * K, wb, r, K, N, n, width, y + m * N); break;
      default: break;
    }
  }
}
}  // namespace

LOONG_VECTOR_CLONES
void packed_matmul_blocks(const float* __restrict x, const float* __restrict w, const float* __restrict residual,
                          int64_t M, int64_t K, int64_t N, int64_t b0, int64_t b1, float* __restrict y) {
  packed_blocks<F32Weights>(x, w, residual, M, K, N, b0, b1, y);
}

#if LOONG_F16C_BLOCKS
// AVX2 without FMA, as the float32 loops' AVX2 clone: the same additions and
// products in the same order, so the same sums bit for bit.
__attribute__((target("avx2,f16c"))) void packed_matmul_blocks_f16(const float* __restrict x,
                                                                   const uint16_t* __restrict w,
                                                                   const float* __restrict residual, int64_t M,
                                                                   int64_t K, int64_t N, int64_t b0, int64_t b1,
                                                                   float* __restrict y) {
  packed_blocks<F16Weights>(x, w, residual, M, K, N, b0, b1, y);
}
bool packed_f16_supported() {
  static const bool yes = (__builtin_cpu_init(), __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c"));
  return yes;
}
#else
void packed_matmul_blocks_f16(const float*, const uint16_t*, const float*, int64_t, int64_t, int64_t, int64_t,
                              int64_t, float*) {
  __builtin_trap();  // never called: packed_f16_supported() is false
}
bool packed_f16_supported() { return false; }
#endif

namespace {
inline float bf16_to_float(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
// Round to nearest even, as c10::BFloat16 does; a NaN stays a NaN (tested on
// the bits, which -ffast-math does not fold away: a diverged checkpoint's
// activations are not this file's padding keys).
inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
inline float silu_of(float s) { return s / (1.0f + expf(std::min(-s, 80.0f))); }
}  // namespace

LOONG_VECTOR_CLONES
void sum_frame_f32(float* __restrict y, const float* __restrict a, const float* __restrict b,
                   const float* __restrict r, int64_t n, bool silu) {
  for (int64_t i = 0; i < n; ++i) {
    float s = y[i];
    if (a) s += a[i];
    if (b) s += b[i];
    if (r) s += r[i];
    y[i] = silu ? silu_of(s) : s;
  }
}

LOONG_VECTOR_CLONES
void sum_frame_bf16(uint16_t* __restrict y, const uint16_t* __restrict a, const uint16_t* __restrict b,
                    const uint16_t* __restrict r, int64_t n, bool silu) {
  for (int64_t i = 0; i < n; ++i) {
    float s = bf16_to_float(y[i]);
    if (a) s += bf16_to_float(a[i]);
    if (b) s += bf16_to_float(b[i]);
    if (r) s += bf16_to_float(r[i]);
    y[i] = float_to_bf16(silu ? silu_of(s) : s);
  }
}

}  // namespace loong::detail
