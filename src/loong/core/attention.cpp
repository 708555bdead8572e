#include "loong/core/attention.h"

#include <cmath>
#include <limits>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "loong/core/decode_attention_kernel.h"

namespace loong {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;

// Scores of queries [i0, i0 + n) against keys [0, i0 + n), the keys after
// each query masked: [B, H, n, i0 + n]. q is already scaled.
at::Tensor block_scores(const at::Tensor& q_scaled, const at::Tensor& k, int64_t i0, int64_t n) {
  auto s = at::matmul(q_scaled.narrow(2, i0, n), k.narrow(2, 0, i0 + n).transpose(-2, -1));
  auto later = at::ones({n, n}, q_scaled.options().dtype(at::kBool)).triu(1);
  s.narrow(3, i0, n).masked_fill_(later, -std::numeric_limits<double>::infinity());
  return s;
}

struct BlockedCausalAttention : Function<BlockedCausalAttention> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q_in, const at::Tensor& k_in,
                            const at::Tensor& v_in, int64_t block) {
    const auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    const int64_t T = q.size(2);
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
    const auto qs = q * scale;
    auto out = at::empty_like(q);
    auto lse = at::empty({q.size(0), q.size(1), T, 1}, q.options());  // each row's log-sum-exp
    for (int64_t i0 = 0; i0 < T; i0 += block) {
      const int64_t n = std::min(block, T - i0);
      auto s = block_scores(qs, k, i0, n);
      auto l = at::logsumexp(s, -1, true);
      out.narrow(2, i0, n).copy_(at::matmul(s.sub_(l).exp_(), v.narrow(2, 0, i0 + n)));
      lse.narrow(2, i0, n).copy_(l);
    }
    ctx->save_for_backward({qs, k, v, out, lse});
    ctx->saved_data["block"] = block;
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &qs = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    const int64_t block = ctx->saved_data["block"].toInt();
    const double scale = ctx->saved_data["scale"].toDouble();
    const auto dout = grads[0].contiguous();
    const int64_t T = qs.size(2);
    // softmax backward: dS = P * (dP - rowsum(dO * O)), with dP = dO V^T.
    const auto delta = (dout * out).sum(-1, true);
    auto dq = at::empty_like(qs), dk = at::zeros_like(k), dv = at::zeros_like(v);
    for (int64_t i0 = 0; i0 < T; i0 += block) {
      const int64_t n = std::min(block, T - i0), e = i0 + n;
      auto p = block_scores(qs, k, i0, n).sub_(lse.narrow(2, i0, n)).exp_();
      const auto d_o = dout.narrow(2, i0, n);
      dv.narrow(2, 0, e).add_(at::matmul(p.transpose(-2, -1), d_o));
      auto ds = p.mul_(at::matmul(d_o, v.narrow(2, 0, e).transpose(-2, -1)).sub_(delta.narrow(2, i0, n)));
      dq.narrow(2, i0, n).copy_(at::matmul(ds, k.narrow(2, 0, e)).mul_(scale));
      dk.narrow(2, 0, e).add_(at::matmul(ds.transpose(-2, -1), qs.narrow(2, i0, n)));
    }
    return {dq, dk, dv, at::Tensor()};
  }
};

}  // namespace

at::Tensor blocked_causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t block) {
  TORCH_CHECK(q.dim() == 4 && k.sizes() == q.sizes() && v.sizes() == q.sizes(),
              "blocked_causal_attention: expected q, k, v of one shape [B, H, T, D]");
  TORCH_CHECK(block > 0, "blocked_causal_attention: block must be positive");
  return BlockedCausalAttention::apply(q, k, v, block);
}

bool decode_attention_supported(const at::Tensor& k, const at::Tensor& v, const at::Tensor& valid) {
  auto fits = [](const at::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.dim() == 4 && t.is_contiguous();
  };
  return fits(k) && fits(v) && k.sizes() == v.sizes() &&
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
  const int rep = static_cast<int>(q.size(1) / Hkv);
  auto out = at::empty({B, q.size(1), D}, q.options());
  const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
  const bool* mp = valid.defined() ? valid.data_ptr<bool>() : nullptr;
  float* op = out.data_ptr<float>();
  // One task per row and key/value head. Below a few thousand products a
  // task, handing work to the other threads costs more than it saves.
  const int64_t grain = S * rep * D >= 16384 ? 1 : B * Hkv;
  at::parallel_for(0, B * Hkv, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(S));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / Hkv;
      detail::decode_attention_head(qp + t * rep * D, kp + t * C * D, vp + t * C * D,
                                    mp ? mp + b * valid.size(1) : nullptr, S, rep, static_cast<int>(D),
                                    scratch.data(), op + t * rep * D);
    }
  });
  return out.to(q_in.scalar_type());
}

}  // namespace loong
