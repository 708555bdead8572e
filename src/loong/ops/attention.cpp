#include "loong/ops/attention.h"

#include <cmath>
#include <limits>

#include <torch/csrc/autograd/custom_function.h>

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

}  // namespace loong
