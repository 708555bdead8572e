#include "loong/ops/decode_ops.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <string>
#include <vector>

#include "loong/core/error.h"
#ifdef _OPENMP
#include <omp.h>
#endif
#include "loong/ops/decode_kernels.h"

namespace loong {
namespace {
bool cpu_float(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous();
}

// Whether a product is worth splitting over threads: a weight of a million
// values takes some 100 us to read on one core, the hand-off some 5 us; the
// tiny models' products (a few hundred thousand multiply-adds) were slower
// split (docs/benchmarks.md, "Large models on the CPU").
bool parallel_product(int64_t M, int64_t K, int64_t N) { return K * N >= (int64_t{1} << 20) || M * K * N >= (int64_t{1} << 22); }
}  // namespace

int decode_loop_threads() {
  const int64_t n = std::max(at::get_num_threads(), 1);
  std::vector<char> seen(static_cast<size_t>(n), 0);
  at::parallel_for(0, n, 1, [&](int64_t, int64_t) {
    const int t = at::get_thread_num();
    if (t >= 0 && t < n) seen[static_cast<size_t>(t)] = 1;
  });
  return static_cast<int>(std::count(seen.begin(), seen.end(), 1));
}

void run_team(int threads, const std::function<void(int, int, const std::function<void()>&)>& f) {
#ifdef _OPENMP
  if (threads > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(threads)
    {
      const std::function<void()> sync = [] {
#pragma omp barrier
      };
      f(omp_get_thread_num(), omp_get_num_threads(), sync);
    }
    return;
  }
#endif
  f(0, 1, [] {});
}

bool decode_attention_supported(const at::Tensor& k, const at::Tensor& v, const at::Tensor& valid) {
  return cpu_float(k) && cpu_float(v) && k.dim() == 4 && k.sizes() == v.sizes() &&
         (!valid.defined() ||
          (valid.device().is_cpu() && valid.scalar_type() == at::kBool && valid.is_contiguous()));
}

at::Tensor decode_attention(const at::Tensor& q_in, const at::Tensor& k, const at::Tensor& v, int64_t S,
                            const at::Tensor& valid, double scale) {
  TORCH_CHECK(decode_attention_supported(k, v, valid),
              "decode_attention: expected contiguous float32 CPU caches [B, Hkv, C, D] and a bool mask");
  const int64_t B = k.size(0), Hkv = k.size(1), C = k.size(2), D = k.size(3);
  TORCH_CHECK(q_in.dim() == 3 && q_in.size(0) == B && q_in.size(2) == D && q_in.size(1) % Hkv == 0,
              "decode_attention: expected queries [", B, ", H, ", D, "] with H a multiple of ", Hkv, ", got ",
              q_in.sizes());
  TORCH_CHECK(S >= 1 && S <= C, "decode_attention: ", S, " positions of a cache of ", C);
  TORCH_CHECK(!valid.defined() || (valid.dim() == 2 && valid.size(0) == B && valid.size(1) >= S),
              "decode_attention: expected a mask [", B, ", >= ", S, "]");
  const auto q = (q_in.to(at::kFloat) * scale).contiguous();
  auto out = at::empty({B, q.size(1), D}, q.options());
  decode_attention_into(q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(),
                        valid.defined() ? valid.data_ptr<bool>() : nullptr, valid.defined() ? valid.size(1) : 0, B, 1,
                        q.size(1), Hkv, C, D, S - 1, out.data_ptr<float>());
  return out.to(q_in.scalar_type());
}

void decode_attention_into(const float* q, const float* k, const float* v, const bool* valid,
                           int64_t valid_stride, int64_t B, int64_t K, int64_t H, int64_t Hkv, int64_t C,
                           int64_t D, int64_t p, float* out) {
  const int rep = static_cast<int>(H / Hkv);
  // One task per row and key/value head, its K queries in turn (the keys
  // they share stay in the cache). Below about a million products a step,
  // handing work to the other threads (some microseconds) costs more than it
  // saves.
  const int64_t grain = B * Hkv * (p + K) * K * rep * D >= (int64_t{1} << 20) ? 1 : B * Hkv;
  at::parallel_for(0, B * Hkv, grain, [&](int64_t begin, int64_t end) {
    decode_attention_tasks(q, k, v, valid, valid_stride, K, H, Hkv, C, D, p, begin, end, out);
  });
}

void decode_attention_tasks(const float* q, const float* k, const float* v, const bool* valid, int64_t valid_stride,
                            int64_t K, int64_t H, int64_t Hkv, int64_t C, int64_t D, int64_t p, int64_t t0,
                            int64_t t1, float* out, float* scratch) {
  const int rep = static_cast<int>(H / Hkv);
  std::vector<float> own(scratch ? 0 : static_cast<size_t>(p + K));
  if (!scratch) scratch = own.data();
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t b = t / Hkv, g = t % Hkv;
    for (int64_t j = 0; j < K; ++j) {
      const int64_t at = ((b * K + j) * H + g * rep) * D;
      detail::decode_attention_head(q + at, k + t * C * D, v + t * C * D, valid ? valid + b * valid_stride : nullptr,
                                    p + j + 1, rep, static_cast<int>(D), scratch, out + at);
    }
  }
}

namespace {
// small_matmul on raw float32 arrays (residual may be null, not y).
void small_matmul_into(const float* xp, const float* wp, const float* rp, int64_t M, int64_t K, int64_t N,
                       float* yp) {
  // Columns in blocks of 256 (a multiple of any vector width), split over
  // threads only when there is enough work to pay for the hand-off.
  constexpr int64_t kColumns = 256;
  const int64_t blocks = (N + kColumns - 1) / kColumns;
  const int64_t grain = parallel_product(M, K, N) ? 1 : blocks;
  at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
    detail::small_matmul_columns(xp, wp, rp, M, K, N, begin * kColumns, std::min(N, end * kColumns), yp);
  });
}
}  // namespace

bool small_matmul_supported(const at::Tensor& w) { return cpu_float(w); }

at::Tensor small_matmul(const at::Tensor& x_in, const at::Tensor& w, const at::Tensor& residual) {
  TORCH_CHECK(small_matmul_supported(w) && x_in.device().is_cpu() && x_in.scalar_type() == at::kFloat,
              "small_matmul: expected float32 CPU tensors, the weight contiguous");
  TORCH_CHECK(x_in.dim() == 2 && w.dim() == 2 && x_in.size(1) == w.size(0), "small_matmul: cannot multiply ",
              x_in.sizes(), " by ", w.sizes());
  const auto x = x_in.contiguous();
  const int64_t M = x.size(0), K = x.size(1), N = w.size(1);
  at::Tensor r;
  if (residual.defined()) {
    TORCH_CHECK(residual.sizes() == at::IntArrayRef({M, N}), "small_matmul: expected a residual [", M, ", ",
                N, "], got ", residual.sizes());
    r = residual.to(at::kFloat).contiguous();
  }
  auto y = at::empty({M, N}, x.options());
  small_matmul_into(x.data_ptr<float>(), w.data_ptr<float>(), r.defined() ? r.data_ptr<float>() : nullptr, M, K, N,
                    y.data_ptr<float>());
  return y;
}

at::Tensor pack_columns(const at::Tensor& w, bool f16_if_exact) {
  TORCH_CHECK(w.dim() == 2 && w.device().is_cpu() && w.scalar_type() == at::kFloat,
              "pack_columns: expected a float32 CPU matrix [K, N]");
  const int64_t K = w.size(0), N = w.size(1), C = detail::kPackedColumns, blocks = (N + C - 1) / C;
  auto padded = at::zeros({K, blocks * C}, w.options());
  padded.narrow(1, 0, N).copy_(w);
  auto packed = padded.view({K, blocks, C}).permute({1, 0, 2}).contiguous();
  return f16_if_exact ? packed_f16_if_exact(packed) : packed;
}

at::Tensor packed_f16_if_exact(const at::Tensor& packed) {
  if (packed.scalar_type() != at::kFloat || !detail::packed_f16_supported() || !packed.isfinite().all().item<bool>())
    return packed;
  auto half = packed.to(at::kHalf);
  return half.to(at::kFloat).equal(packed) ? half : packed;
}

void packed_matmul_range(const float* x, const at::Tensor& packed, const float* residual, int64_t M, int64_t K,
                         int64_t N, int64_t b0, int64_t b1, float* y) {
  if (packed.scalar_type() == at::kHalf)
    detail::packed_matmul_blocks_f16(x, reinterpret_cast<const uint16_t*>(packed.data_ptr<at::Half>()), residual, M, K,
                                     N, b0, b1, y);
  else
    detail::packed_matmul_blocks(x, packed.data_ptr<float>(), residual, M, K, N, b0, b1, y);
}

void packed_matmul_into(const float* x, const at::Tensor& packed, const float* residual, int64_t M, int64_t K,
                        int64_t N, float* y) {
  const int64_t blocks = (N + detail::kPackedColumns - 1) / detail::kPackedColumns;
  TORCH_CHECK(packed.device().is_cpu() && packed.is_contiguous() &&
                  (packed.scalar_type() == at::kFloat || packed.scalar_type() == at::kHalf) &&
                  packed.sizes() == at::IntArrayRef({blocks, K, detail::kPackedColumns}),
              "packed_matmul_into: expected a weight [", K, ", ", N, "] as pack_columns gives it, got ",
              packed.sizes(), " ", packed.scalar_type());
  const int64_t grain = parallel_product(M, K, N) ? 1 : blocks;
  at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
    packed_matmul_range(x, packed, residual, M, K, N, begin, end, y);
  });
}

at::Tensor rows_matmul(const at::Tensor& x_in, const at::Tensor& w, const at::Tensor& residual,
                       const at::Tensor& scale) {
  const auto wt = w.scalar_type();
  TORCH_CHECK(w.device().is_cpu() && w.is_contiguous() && x_in.device().is_cpu() && x_in.scalar_type() == at::kFloat &&
                  (wt == at::kFloat || wt == at::kBFloat16 || wt == at::kChar),
              "rows_matmul: expected float32 CPU x and a contiguous float32, bfloat16 or int8 CPU weight");
  TORCH_CHECK((wt == at::kChar) == scale.defined(), "rows_matmul: int8 weights need a scale per row, others none");
  TORCH_CHECK(x_in.dim() == 2 && w.dim() == 2 && x_in.size(1) == w.size(1), "rows_matmul: cannot multiply ",
              x_in.sizes(), " by the transpose of ", w.sizes());
  const auto x = x_in.contiguous();
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  at::Tensor r;
  if (residual.defined()) {
    TORCH_CHECK(residual.sizes() == at::IntArrayRef({M, N}), "rows_matmul: expected a residual [", M, ", ", N,
                "], got ", residual.sizes());
    r = residual.to(at::kFloat).contiguous();
  }
  auto y = at::empty({M, N}, x.options());
  at::Tensor s;
  if (scale.defined()) {
    TORCH_CHECK(scale.numel() == w.size(0), "rows_matmul: expected ", w.size(0), " scales, got ", scale.numel());
    s = scale.to(at::kFloat).contiguous();
  }
  const float *xp = x.data_ptr<float>(), *rp = r.defined() ? r.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  // Rows of w in blocks of 24 (the kernel takes them three at a time); each
  // thread takes one contiguous range, so that it streams its part of the
  // weight from memory in order.
  constexpr int64_t kRows = 24;
  const int64_t blocks = (N + kRows - 1) / kRows;
  const int64_t grain = parallel_product(M, K, N) ? 1 : blocks;
  at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
    const int64_t n0 = begin * kRows, n1 = std::min(N, end * kRows);
    if (wt == at::kFloat)
      detail::rows_matmul_columns(xp, w.data_ptr<float>(), rp, M, K, N, n0, n1, yp);
    else if (wt == at::kBFloat16)
      detail::rows_matmul_columns_bf16(xp, reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>()), rp, M, K, N,
                                       n0, n1, yp);
    else
      detail::rows_matmul_columns_int8(xp, w.data_ptr<int8_t>(), s.data_ptr<float>(), rp, M, K, N, n0, n1, yp);
  });
  return y;
}

RowsWeight quantize_rows(const at::Tensor& w, const std::string& type) {
  TORCH_CHECK(w.dim() == 2 && w.is_floating_point(), "quantize_rows: expected a floating-point weight [N, K]");
  const auto f = w.to(at::kFloat);
  if (type == "f32") return {f.contiguous(), {}};
  // A NaN or infinite weight would turn a whole row's int8 scale (or its
  // logits) into NaN without a word: refuse it by name.
  if (!at::isfinite(f).all().item<bool>())
    fail("--decode-weights", "the model holds NaN or infinite weights; they cannot be stored as " + type);
  if (type == "bf16") return {f.to(at::kBFloat16).contiguous(), {}};
  TORCH_CHECK(type == "int8", "quantize_rows: expected f32, bf16 or int8, got ", type);
  auto scale = f.abs().amax(1).div(127.0).clamp_min(1e-12);
  auto q = f.div(scale.unsqueeze(1)).round().clamp(-127, 127).to(at::kChar).contiguous();
  return {q, scale.contiguous()};
}

}  // namespace loong

namespace loong {

namespace {
// Frame-major: each of the first dimension's entries one dense block.
bool frame_major(const at::Tensor& t) {
  return t.dim() == 4 && t.device().is_cpu() &&
         (t.is_contiguous() || t.is_contiguous(at::MemoryFormat::ChannelsLast));
}
}  // namespace

bool sum_frame_taps_supported(const at::Tensor& y, const std::vector<at::Tensor>& older, const at::Tensor& residual) {
  if (!frame_major(y) || (y.scalar_type() != at::kFloat && y.scalar_type() != at::kBFloat16) || older.size() > 2)
    return false;
  const auto same = [&](const at::Tensor& t, int64_t frames) {
    return frame_major(t) && t.scalar_type() == y.scalar_type() && t.size(0) == frames &&
           t.sizes().slice(1) == y.sizes().slice(1) && t.strides().slice(1) == y.strides().slice(1);
  };
  for (size_t s = 1; s <= older.size(); ++s) {
    const auto& t = older[s - 1];
    const int64_t frames = y.size(0) - static_cast<int64_t>(s);
    if (frames > 0 ? !t.defined() || !same(t, frames) : t.defined()) return false;
  }
  return !residual.defined() || same(residual, y.size(0));
}

void sum_frame_taps(const at::Tensor& y, const std::vector<at::Tensor>& older, const at::Tensor& residual, bool silu) {
  if (!sum_frame_taps_supported(y, older, residual))
    fail("sum_frame_taps", "expected frame-major float32 or bfloat16 CPU tensors of one layout, at most two older taps");
  const int64_t T = y.size(0), P = T ? y.numel() / T : 0;
  const bool bf16 = y.scalar_type() == at::kBFloat16;
  auto frame = [&](const at::Tensor& t, int64_t i) -> const void* {
    if (!t.defined() || i < 0) return nullptr;
    return static_cast<const char*>(t.data_ptr()) + i * P * static_cast<int64_t>(t.element_size());
  };
  const at::Tensor none;
  const at::Tensor& a = older.size() > 0 ? older[0] : none;
  const at::Tensor& b = older.size() > 1 ? older[1] : none;
  // Pieces of at most 16,384 values (frame t's piece j), so that a few large
  // frames still go to every thread.
  constexpr int64_t kPiece = 16384;
  const int64_t pieces = std::max<int64_t>((P + kPiece - 1) / kPiece, 1);
  const int64_t es = static_cast<int64_t>(y.element_size());
  auto at_piece = [&](const void* p, int64_t j) -> const void* {
    return p ? static_cast<const char*>(p) + j * kPiece * es : nullptr;
  };
  at::parallel_for(0, T * pieces, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / pieces, j = i % pieces, n = std::min(kPiece, P - j * kPiece);
      void* yp = const_cast<void*>(at_piece(frame(y, t), j));
      const void *ap = at_piece(frame(a, t - 1), j), *bp = at_piece(frame(b, t - 2), j),
                 *rp = at_piece(frame(residual, t), j);
      if (bf16)
        detail::sum_frame_bf16(static_cast<uint16_t*>(yp), static_cast<const uint16_t*>(ap),
                               static_cast<const uint16_t*>(bp), static_cast<const uint16_t*>(rp), n, silu);
      else
        detail::sum_frame_f32(static_cast<float*>(yp), static_cast<const float*>(ap), static_cast<const float*>(bp),
                              static_cast<const float*>(rp), n, silu);
    }
  });
}

}  // namespace loong
