#include "loong/lm/model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include <torch/torch.h>

#include "loong/ops/decode_kernels.h"
#include "loong/ops/decode_ops.h"
#include "loong/core/error.h"
#include "loong/ops/attention.h"
#include "loong/ops/checkpoint.h"
#include "loong/lm/vocab.h"

namespace loong::lm {

RMSNormImpl::RMSNormImpl(int dim, double e) : eps(e) { weight = register_parameter("weight", torch::ones({dim})); }

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  // Statistics in float32 even under bf16 autocast, as LLaMA does.
  auto xf = x.to(torch::kFloat);
  auto y = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
  return y.to(x.scalar_type()) * weight;
}

std::pair<torch::Tensor, torch::Tensor> rope_tables(int head_dim, int64_t start, int64_t length, double theta,
                                                    torch::Device device) {
  auto opts = torch::TensorOptions().dtype(torch::kDouble).device(device);
  auto i = torch::arange(0, head_dim / 2, opts);
  auto freq = torch::pow(theta, -2.0 * i / head_dim);                  // [hd/2]
  auto pos = torch::arange(start, start + length, opts);                // [T]
  auto angle = torch::outer(pos, freq);                                 // [T, hd/2]
  return {angle.cos().to(torch::kFloat), angle.sin().to(torch::kFloat)};
}

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  // x [B, T, H, hd] -> pairs [B, T, H, hd/2, 2]
  auto shape = x.sizes().vec();
  auto p = x.to(torch::kFloat).reshape({shape[0], shape[1], shape[2], shape[3] / 2, 2});
  auto a = p.select(-1, 0), b = p.select(-1, 1);
  const int64_t rows = cos.dim() == 3 ? cos.size(0) : 1;
  auto c = cos.view({rows, shape[1], 1, shape[3] / 2}), s = sin.view({rows, shape[1], 1, shape[3] / 2});
  auto out = torch::stack({a * c - b * s, a * s + b * c}, -1);
  return out.reshape(shape).to(x.scalar_type());
}

torch::Tensor rope_positions(const LmConfig& c, const torch::Tensor& tokens, int64_t start,
                             torch::Tensor& video_start) {
  const int64_t B = tokens.size(0), T = tokens.size(1);
  const auto opts = torch::TensorOptions().dtype(torch::kLong).device(tokens.device());
  auto idx = torch::arange(start, start + T, opts).view({1, T}).expand({B, T});
  if (!c.rope_3d()) return idx.unsqueeze(-1).expand({B, T, 3});
  if (!video_start.defined()) video_start = torch::full({B}, -1, opts);
  // Each row's first <sov> in this chunk, where no earlier chunk had one.
  auto is_sov = tokens.eq(Vocab(c.text_vocab, c.video_vocab).sov());
  auto first = torch::where(is_sov, idx, torch::full_like(idx, start + T)).amin(1);  // start + T: none
  video_start = torch::where(video_start.ge(0) | first.ge(start + T), video_start, first);
  return grid_positions(c, idx, video_start);
}

torch::Tensor grid_positions(const LmConfig& c, const torch::Tensor& idx, const torch::Tensor& video_start) {
  const int64_t B = idx.size(0);
  auto origin = video_start.view({B, 1}) + 1;  // the first video token's index
  auto k = idx - origin;                       // video token number
  auto in_video = video_start.view({B, 1}).ge(0) & k.ge(0);
  k = k.clamp_min(0);
  const int64_t per_frame = int64_t(c.rope_rows) * c.rope_cols;
  auto axis = [&](const torch::Tensor& offset) { return torch::where(in_video, origin + offset, idx); };
  return torch::stack({axis(k.div(per_frame, "floor")), axis(k.remainder(per_frame).div(c.rope_cols, "floor")),
                       axis(k.remainder(c.rope_cols))},
                      -1);
}

std::pair<torch::Tensor, torch::Tensor> rope_pairs(const LmConfig& c, torch::Device device) {
  const int n = c.head_dim() / 2;
  std::vector<int64_t> axis(n, 0);
  std::vector<double> freq(n);
  const int spatial = c.rope_3d() ? n / 3 : 0;
  const int runs[3] = {n - 2 * spatial, spatial, spatial};
  for (int a = 0, i = 0; a < 3; ++a)
    for (int k = 0; k < runs[a]; ++k, ++i) {
      axis[i] = a;
      freq[i] = std::pow(c.rope_theta, -static_cast<double>(k) / runs[a]);
    }
  return {torch::tensor(axis, torch::kLong).to(device), torch::tensor(freq, torch::kDouble).to(device)};
}

std::pair<torch::Tensor, torch::Tensor> rope_angles(const torch::Tensor& positions, const torch::Tensor& axis,
                                                    const torch::Tensor& freq) {
  auto angle = positions.to(torch::kDouble).index_select(-1, axis) * freq;  // [B, T, hd/2]
  return {angle.cos().to(torch::kFloat), angle.sin().to(torch::kFloat)};
}

namespace {
// cos and sin [B, T, head_dim / 2] of tokens [B, T] at [start, start + T) with
// 3D positions, for the general forward pass and the decode step alike. The
// cache's <sov> indices are read (unless the chunk starts a new sequence at 0)
// and updated.
std::pair<torch::Tensor, torch::Tensor> rope_3d_angles(const LmConfig& c, const torch::Tensor& axis,
                                                       const torch::Tensor& freq, const torch::Tensor& tokens,
                                                       int64_t start, KvCache* cache) {
  torch::Tensor video_start;
  if (cache && start > 0) video_start = cache->video_start;
  auto positions = rope_positions(c, tokens, start, video_start);
  if (cache) cache->video_start = video_start;
  return rope_angles(positions, axis, freq);
}
}  // namespace

KvCache::KvCache(const LmConfig& c, int64_t batch, int64_t cap, torch::Device device, torch::Dtype dtype)
    : capacity(cap) {
  auto opts = torch::TensorOptions().dtype(dtype).device(device);
  for (int l = 0; l < c.n_layers; ++l) {
    k.push_back(torch::zeros({batch, c.n_kv_heads, cap, c.head_dim()}, opts));
    v.push_back(torch::zeros({batch, c.n_kv_heads, cap, c.head_dim()}, opts));
  }
}

namespace {
torch::nn::Linear linear(int in, int out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); }

// [B, Hkv, S, hd] -> [B, Hkv * rep, S, hd], each kv head shared by `rep` query heads.
torch::Tensor repeat_kv(const torch::Tensor& x, int rep) {
  if (rep == 1) return x;
  const auto B = x.size(0), H = x.size(1), S = x.size(2), D = x.size(3);
  return x.unsqueeze(2).expand({B, H, rep, S, D}).reshape({B, H * rep, S, D});
}
}  // namespace

AttentionImpl::AttentionImpl(const LmConfig& c)
    : n_heads(c.n_heads), n_kv_heads(c.n_kv_heads), head_dim(c.head_dim()) {
  wq = register_module("wq", linear(c.dim, n_heads * head_dim));
  wk = register_module("wk", linear(c.dim, n_kv_heads * head_dim));
  wv = register_module("wv", linear(c.dim, n_kv_heads * head_dim));
  wo = register_module("wo", linear(n_heads * head_dim, c.dim));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     KvCache* cache, int layer, int64_t start) {
  const auto B = x.size(0), T = x.size(1);
  torch::Tensor q, k, v;
  if (cache) {  // decoding: a few positions, where concatenating the weights would cost more than it saves
    q = wq(x), k = wk(x), v = wv(x);
  } else {      // whole sequences (training): one matrix product for q, k and v instead of three
    auto qkv = torch::nn::functional::linear(x, torch::cat({wq->weight, wk->weight, wv->weight}));
    auto parts = qkv.split_with_sizes({n_heads * head_dim, n_kv_heads * head_dim, n_kv_heads * head_dim}, -1);
    q = parts[0], k = parts[1], v = parts[2];
  }
  q = apply_rope(q.view({B, T, n_heads, head_dim}), cos, sin).transpose(1, 2);
  k = apply_rope(k.view({B, T, n_kv_heads, head_dim}), cos, sin).transpose(1, 2);
  v = v.view({B, T, n_kv_heads, head_dim}).transpose(1, 2);
  if (cache) {
    cache->k[layer].narrow(2, start, T).copy_(k);
    cache->v[layer].narrow(2, start, T).copy_(v);
    k = cache->k[layer].narrow(2, 0, start + T);
    v = cache->v[layer].narrow(2, 0, start + T);
  }
  const int rep = n_heads / n_kv_heads;
  torch::Tensor key_valid;
  if (cache && cache->valid.defined()) key_valid = cache->valid.narrow(1, 0, start + T);
  auto y = attention(q, repeat_kv(k, rep), repeat_kv(v, rep), true, key_valid);  // [B, H, T, hd]
  return wo(y.transpose(1, 2).reshape({B, T, n_heads * head_dim}));
}

FeedForwardImpl::FeedForwardImpl(int dim, int hidden) {
  w1 = register_module("w1", linear(dim, hidden));
  w2 = register_module("w2", linear(hidden, dim));
  w3 = register_module("w3", linear(dim, hidden));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  // A few positions (decoding, or scoring a speculative draft): concatenating
  // the weights would copy them every call, more than the products read.
  if (x.size(-2) <= 16) return w2(torch::silu(w1(x)) * w3(x));
  // One matrix product for both gates (the weights stay separate, as Meta names them).
  auto h = torch::nn::functional::linear(x, torch::cat({w1->weight, w3->weight})).chunk(2, -1);
  return w2(torch::silu(h[0]) * h[1]);
}

TransformerBlockImpl::TransformerBlockImpl(const LmConfig& c) {
  attention = register_module("attention", Attention(c));
  feed_forward = register_module("feed_forward", FeedForward(c.dim, c.ffn_dim));
  attention_norm = register_module("attention_norm", RMSNorm(c.dim, c.norm_eps));
  ffn_norm = register_module("ffn_norm", RMSNorm(c.dim, c.norm_eps));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                            KvCache* cache, int layer, int64_t start) {
  auto h = x + attention(attention_norm(x), cos, sin, cache, layer, start);
  return h + feed_forward(ffn_norm(h));
}

LlamaImpl::LlamaImpl(LmConfig c) : config(std::move(c)) {
  config.validate("model config");
  if (config.rope_3d() && config.rope_rows < 1)
    fail("model config", "key 'rope_grid': 3d rotary positions need the latent frame's grid [rows, cols] (the "
                         "trainer takes it from the shards)");
  tok_embeddings = register_module("tok_embeddings", torch::nn::Embedding(config.vocab_size(), config.dim));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int l = 0; l < config.n_layers; ++l) layers->push_back(TransformerBlock(config));
  norm = register_module("norm", RMSNorm(config.dim, config.norm_eps));
  output = register_module("output", linear(config.dim, config.vocab_size()));

  // GPT-2 style init: N(0, 0.02), with the projections that write into the
  // residual stream (wo, w2) scaled by 1/sqrt(2 * layers) so its variance
  // does not grow with depth.
  torch::NoGradGuard ng;
  const double resid = 0.02 / std::sqrt(2.0 * config.n_layers);
  for (auto& p : named_parameters()) {
    const auto& name = p.key();
    if (p.value().dim() < 2) continue;  // RMSNorm weights stay 1
    const bool residual_out = name.find("attention.wo.") != std::string::npos ||
                              name.find("feed_forward.w2.") != std::string::npos;
    p.value().normal_(0, residual_out ? resid : 0.02);
  }
}

torch::Tensor LlamaImpl::hidden(const torch::Tensor& tokens, KvCache* cache, int64_t start) {
  if (tokens.dim() != 2) fail("model input", "expected token ids [B, T], got " + c10::str(tokens.sizes()));
  const int64_t T = tokens.size(1);
  if (T == 0) fail("model input", "empty sequence");
  if (start < 0 || start + T > config.max_seq_len)
    fail("model input", "positions [" + std::to_string(start) + ", " + std::to_string(start + T) +
                            ") exceed max_seq_len " + std::to_string(config.max_seq_len));
  if (cache) {
    if (start != cache->length)
      fail("model input", "the cache holds " + std::to_string(cache->length) + " positions but the tokens start at " +
                              std::to_string(start));
    if (start + T > cache->capacity)
      fail("model input", "the cache holds at most " + std::to_string(cache->capacity) + " positions");
    if (cache->valid.defined() && (cache->valid.dim() != 2 || cache->valid.size(0) != tokens.size(0) ||
                                   cache->valid.size(1) != cache->capacity ||
                                   cache->valid.scalar_type() != torch::kBool))
      fail("model input", "the cache's padding mask must be bool [batch, capacity], got " +
                              c10::str(cache->valid.sizes()));
  }
  const auto lo = tokens.min().item<int64_t>(), hi = tokens.max().item<int64_t>();
  if (lo < 0 || hi >= config.vocab_size())
    fail("model input", "token ids must be in [0, " + std::to_string(config.vocab_size()) + "), got [" +
                            std::to_string(lo) + ", " + std::to_string(hi) + "]");
  torch::Tensor cos, sin;
  if (config.rope_3d()) {
    if (!rope_axis_.defined() || rope_axis_.device() != tokens.device())
      std::tie(rope_axis_, rope_freq_) = rope_pairs(config, tokens.device());
    std::tie(cos, sin) = rope_3d_angles(config, rope_axis_, rope_freq_, tokens, start, cache);
  } else {
    if (!rope_cos_.defined() || rope_cos_.device() != tokens.device())
      std::tie(rope_cos_, rope_sin_) = rope_tables(config.head_dim(), 0, config.max_seq_len, config.rope_theta,
                                                   tokens.device());
    cos = rope_cos_.narrow(0, start, T), sin = rope_sin_.narrow(0, start, T);
  }
  auto h = tok_embeddings(tokens.to(torch::kLong));
  for (size_t l = 0; l < layers->size(); ++l) {
    auto block = layers[l]->as<TransformerBlock>();
    if (checkpoint_blocks && !cache && is_training())
      h = checkpointed([block, cos, sin, start](const std::vector<torch::Tensor>& x) { return block->forward(x[0], cos, sin, nullptr, 0, start); },
                       {h});
    else
      h = block->forward(h, cos, sin, cache, static_cast<int>(l), start);
  }
  if (cache) cache->length = start + T;
  return norm(h);
}

torch::Tensor LlamaImpl::forward(const torch::Tensor& tokens, KvCache* cache, int64_t start) {
  return output(hidden(tokens, cache, start));
}

int64_t LlamaImpl::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace loong::lm

namespace loong::lm {

namespace {
// x / rms(x) with the statistics in float32, as RMSNorm computes them; the
// weight is folded into the product that follows.
torch::Tensor normalise(const torch::Tensor& x, double eps) {
  auto xf = x.to(torch::kFloat);
  return (xf * xf.square().mean(-1, true).add_(eps).rsqrt_()).to(x.scalar_type());
}
}  // namespace

DecodeStep::DecodeStep(const Llama& model, bool hand_kernels, bool share_weights, const std::string& weights)
    : n_heads_(model->config.n_heads),
      n_kv_heads_(model->config.n_kv_heads),
      head_dim_(model->config.head_dim()),
      ffn_dim_(model->config.ffn_dim),
      eps_(model->config.norm_eps),
      max_seq_len_(model->config.max_seq_len),
      hand_kernels_(hand_kernels),
      config_(model->config) {
  torch::NoGradGuard ng;
  // W [out, in] times the norm weight [in]: norm(x) W^T = (x / rms(x)) (W diag(w))^T.
  TORCH_CHECK(weights == "f32" || weights == "bf16" || weights == "int8",
              "DecodeStep: weights must be f32, bf16 or int8, got ", weights);
  const bool fewer_bytes = weights != "f32";
  auto make = [share_weights, fewer_bytes, &weights](std::vector<torch::Tensor> ws, const torch::Tensor& norm) {
    Product p;
    if (share_weights || fewer_bytes) {
      for (auto& w : ws) {
        if (!fewer_bytes) {
          p.rows.push_back(w.detach());
          continue;
        }
        auto q = quantize_rows(w.detach().cpu(), weights);
        p.rows.push_back(q.w.to(w.device()));
        if (q.scale.defined()) p.scales.push_back(q.scale.to(w.device()));
      }
      if (norm.defined()) p.norm = norm.detach();
    } else {
      // Folded below, or (flat_positions) applied by the RMSNorm loop.
      p.t = (ws.size() == 1 ? ws[0] : torch::cat(ws)).detach().t().contiguous();
      if (norm.defined()) p.norm = norm.detach();
    }
    return p;
  };
  for (const auto& m : *model->layers) {
    const auto& block = m->as<TransformerBlock>();
    const auto& a = block->attention;
    const auto& f = block->feed_forward;
    layers_.push_back({make({a->wq->weight, a->wk->weight, a->wv->weight}, block->attention_norm->weight),
                       make({a->wo->weight}, {}), make({f->w1->weight, f->w3->weight}, block->ffn_norm->weight),
                       make({f->w2->weight}, {})});
  }
  // The hand-written loops take the weights as laid out here when they are
  // float32 on the CPU; whether the cache suits them is checked each step.
  auto supported = [fewer_bytes](const Product& p) {
    return p.t.defined() ? small_matmul_supported(p.t)
                         : std::all_of(p.rows.begin(), p.rows.end(), [fewer_bytes](const torch::Tensor& w) {
                             return fewer_bytes ? w.device().is_cpu() : small_matmul_supported(w);
                           });
  };
  hand_kernels_ = hand_kernels_ && std::all_of(layers_.begin(), layers_.end(), [&](const Layer& w) {
                    return supported(w.qkv) && supported(w.wo) && supported(w.w13) && supported(w.w2);
                  });
  embedding_ = model->tok_embeddings->weight.detach();
  norm_ = model->norm->weight.detach();
  const auto device = embedding_.device();
  flat_ = hand_kernels_ && !share_weights && !fewer_bytes && device.is_cpu() && embedding_.is_contiguous() &&
          embedding_.scalar_type() == torch::kFloat && norm_.scalar_type() == torch::kFloat && norm_.is_contiguous();
  for (auto& layer : layers_)
    for (Product* p : {&layer.qkv, &layer.wo, &layer.w13, &layer.w2}) {
      if (!p->t.defined()) continue;
      if (flat_) {
        // t is then read only as packed: one copy of the weights, not two;
        // in float16 where they are float16 values (a bundle's), half the
        // bytes a step reads for the same sums. The norm's weight is applied
        // to x, so that the packed weights are the model's own.
        p->packed = pack_columns(p->t, true), p->t = torch::Tensor();
        if (p->norm.defined()) p->norm = p->norm.to(torch::kFloat).clone();  // a copy, as the packed weights are
      } else if (p->norm.defined()) {
        p->t = (p->t * p->norm.view({-1, 1})).contiguous(), p->norm = torch::Tensor();
      }
    }
  if (config_.rope_3d()) {
    std::tie(rope_axis_, rope_freq_) = rope_pairs(config_, device);
  } else {
    auto [cos, sin] = rope_tables(head_dim_, 0, max_seq_len_, config_.rope_theta, device);
    rotation_ = torch::complex(cos, sin);  // (a + ib)(cos + i sin) is apply_rope's pair rotation
    if (flat_) cos_ = cos.to(torch::kFloat).contiguous(), sin_ = sin.to(torch::kFloat).contiguous();
  }
}

namespace {
// Softmax attention of one query per row, q [B, H, hd], over keys and values
// [B, Hkv, S, hd], with an additive mask [B, 1, 1, S] (optional) -> [B, H, hd].
// Query head h uses kv head h / rep, as repeat_kv lays them out. Scores and
// softmax in float32, whatever the cache's type.
torch::Tensor masked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& mask, double scale) {
  const int64_t B = q.size(0), H = q.size(1), hd = q.size(2), Hkv = k.size(1);
  auto scores = torch::matmul(q.reshape({B, Hkv, H / Hkv, hd}) * scale, k.transpose(2, 3)).to(torch::kFloat);
  if (mask.defined()) scores.add_(mask);
  return torch::matmul(torch::softmax(scores, -1).to(v.scalar_type()), v).reshape({B, H, hd});
}
}  // namespace

torch::Tensor DecodeStep::product(const Product& p, const torch::Tensor& x, const torch::Tensor& r, bool by_hand) {
  if (p.t.defined()) {
    if (by_hand) return small_matmul(x, p.t, r);
    return r.defined() ? torch::addmm(r, x, p.t) : torch::mm(x, p.t);
  }
  const auto xs = p.norm.defined() ? x * p.norm : x;
  // Row i's weight as float32 [out, in], for LibTorch's operations.
  const auto wide = [&](size_t i) {
    const auto& w = p.rows[i];
    if (!p.scales.empty()) return w.to(xs.scalar_type()) * p.scales[i].to(xs.scalar_type()).unsqueeze(1);
    return w.scalar_type() == xs.scalar_type() ? w : w.to(xs.scalar_type());
  };
  const auto scale = [&](size_t i) { return p.scales.empty() ? torch::Tensor() : p.scales[i]; };
  if (r.defined()) {
    TORCH_CHECK(p.rows.size() == 1, "DecodeStep: a residual with ", p.rows.size(), " products");
    return by_hand ? rows_matmul(xs, p.rows[0], r, scale(0)) : torch::addmm(r, xs, wide(0).t());
  }
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i < p.rows.size(); ++i)
    parts.push_back(by_hand ? rows_matmul(xs, p.rows[i], {}, scale(i)) : torch::mm(xs, wide(i).t()));
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 1);
}

template <class Mm, class Addmm, class Store, class Attend>
torch::Tensor DecodeStep::layers_step(torch::Tensor h, const torch::Tensor& rotation, Mm mm, Addmm addmm, Store store,
                                      Attend attend) const {
  const int64_t B = h.size(0);
  const int H = n_heads_, Hkv = n_kv_heads_, hd = head_dim_;
  const auto dtype = embedding_.scalar_type();
  for (size_t l = 0; l < layers_.size(); ++l) {
    const auto& w = layers_[l];
    auto qkv = mm(normalise(h, eps_), w.qkv);  // [B, (H + 2 Hkv) hd]
    auto pairs = qkv.narrow(1, 0, (H + Hkv) * hd).to(torch::kFloat).view({B, H + Hkv, hd / 2, 2});
    auto qk = torch::view_as_real(torch::view_as_complex(pairs) * rotation).to(dtype);  // [B, H + Hkv, hd/2, 2]
    store(l, qk.narrow(1, H, Hkv).reshape({B, Hkv, hd}), qkv.narrow(1, (H + Hkv) * hd, Hkv * hd).view({B, Hkv, hd}));
    auto y = attend(l, qk.narrow(1, 0, H).reshape({B, H, hd}));
    h = addmm(h, y.reshape({B, H * hd}), w.wo);
    auto g = mm(normalise(h, eps_), w.w13);  // [B, 2 ffn]
    h = addmm(h, torch::silu(g.narrow(1, 0, ffn_dim_)).mul_(g.narrow(1, ffn_dim_, ffn_dim_)), w.w2);
  }
  return normalise(h, eps_) * norm_;
}

torch::Tensor DecodeStep::operator()(const torch::Tensor& ids, KvCache& cache) const {
  if (ids.dim() != 1) fail("decode step", "expected token ids [B], got " + c10::str(ids.sizes()));
  return positions(ids.view({-1, 1}), cache).squeeze(1);
}

torch::Tensor DecodeStep::positions(const torch::Tensor& ids, KvCache& cache) const {
  if (ids.dim() != 2) fail("decode step", "expected token ids [B, K], got " + c10::str(ids.sizes()));
  if (cache.k.size() != layers_.size() || ids.size(0) != cache.k[0].size(0))
    fail("decode step", "the cache is for another model or batch (" + std::to_string(cache.k.size()) + " layers, batch " +
                            std::to_string(cache.k.empty() ? 0 : cache.k[0].size(0)) + ")");
  const int64_t B = ids.size(0), K = ids.size(1), p = cache.length, S = p + K;
  if (S > cache.capacity) fail("model input", "the cache holds at most " + std::to_string(cache.capacity) + " positions");
  if (S > max_seq_len_)
    fail("model input", "position " + std::to_string(S - 1) + " exceeds max_seq_len " + std::to_string(max_seq_len_));
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));

  // On the CPU, in float32, the products and the attention are the loops of
  // decode_ops.h; elsewhere LibTorch's general operations.
  const bool by_hand = hand_kernels_ && decode_attention_supported(cache.k[0], cache.v[0], cache.valid);
  if (flat_) {
    // The loops index raw memory: every layer's cache and the mask must have
    // the shapes they assume (LibTorch's operations would throw, not these).
    const std::vector<int64_t> shape{B, n_kv_heads_, cache.capacity, head_dim_};
    bool fits = by_hand && (!cache.valid.defined() || (cache.valid.dim() == 2 && cache.valid.size(0) == B &&
                                                       cache.valid.size(1) >= S));
    for (size_t l = 0; fits && l < layers_.size(); ++l)
      fits = decode_attention_supported(cache.k[l], cache.v[l], cache.valid) && cache.k[l].sizes() == shape;
    if (!fits)
      fail("decode step", "this step (float32 weights on the CPU, hand-written loops) needs contiguous float32 CPU "
                          "caches [" + std::to_string(B) + ", " + std::to_string(n_kv_heads_) + ", " +
                          std::to_string(cache.capacity) + ", " + std::to_string(head_dim_) +
                          "] and a bool padding mask covering every position");
    return flat_positions(ids, cache);
  }
  auto addmm = [by_hand](const torch::Tensor& r, const torch::Tensor& x, const Product& w) {
    return product(w, x, r, by_hand);
  };
  auto mm = [by_hand](const torch::Tensor& x, const Product& w) { return product(w, x, {}, by_hand); };
  // Rows are (item, position) pairs, item-major: the products read each
  // weight once for all K positions. Query j attends to keys [0, p + j]:
  // all K positions' keys are stored first, then the queries attend.
  torch::Tensor mask;  // K == 1: additive, [B, 1, 1, S]: -inf at padding keys; a query always sees itself
  if (!by_hand && cache.valid.defined() && K == 1) {
    mask = torch::zeros({B, S}, embedding_.options().dtype(torch::kFloat))
               .masked_fill_(cache.valid.narrow(1, 0, S).logical_not(), -std::numeric_limits<float>::infinity());
    mask.select(1, p).fill_(0);
    mask = mask.view({B, 1, 1, S});
  }
  torch::Tensor rotation;  // [hd / 2] (one 1D position), or [B K, 1, hd / 2]
  if (config_.rope_3d()) {
    auto [cos, sin] = rope_3d_angles(config_, rope_axis_, rope_freq_, ids.to(embedding_.device()), p, &cache);
    rotation = torch::complex(cos, sin).reshape({B * K, 1, head_dim_ / 2});
  } else {
    rotation = K == 1 ? rotation_[p] : rotation_.narrow(0, p, K).unsqueeze(1).repeat({B, 1, 1});
  }

  const int Hkv = n_kv_heads_, hd = head_dim_;
  torch::Tensor block_mask;  // K > 1: [B, 1, 1, K, S], -inf where key > p + j or at padding (but the query's own)
  if (K > 1) {
    auto opts = embedding_.options().dtype(torch::kFloat);
    auto key = torch::arange(S, opts.dtype(torch::kLong)).view({1, S});
    auto query = torch::arange(p, S, opts.dtype(torch::kLong)).view({K, 1});
    auto allowed = key.le(query).view({1, K, S});
    if (cache.valid.defined())
      allowed = allowed & (cache.valid.narrow(1, 0, S).view({B, 1, S}).to(embedding_.device()) | key.eq(query).view({1, K, S}));
    block_mask = torch::zeros({B, K, S}, opts)
                     .masked_fill_(allowed.logical_not().expand({B, K, S}), -std::numeric_limits<float>::infinity())
                     .view({B, 1, 1, K, S});
  }
  auto h = layers_step(
      embedding_.index_select(0, ids.reshape({-1}).to(embedding_.device(), torch::kLong)), rotation, mm, addmm,
      [&](size_t l, const torch::Tensor& k, const torch::Tensor& v) {
        cache.k[l].narrow(2, p, K).copy_(k.reshape({B, K, Hkv, hd}).transpose(1, 2));
        cache.v[l].narrow(2, p, K).copy_(v.reshape({B, K, Hkv, hd}).transpose(1, 2));
      },
      [&](size_t l, const torch::Tensor& q) {
        if (K == 1) {
          if (by_hand) return decode_attention(q, cache.k[l], cache.v[l], S, cache.valid, scale);
          return masked_attention(q, cache.k[l].narrow(2, 0, S), cache.v[l].narrow(2, 0, S), mask, scale);
        }
        // K queries: one pass over the cache for all of them, the causal
        // block and the padding masked (a loop of one-query passes would read
        // the cache K times).
        const int64_t H = q.size(1), rep = H / Hkv;
        auto q5 = q.reshape({B, K, Hkv, rep, hd}).permute({0, 2, 3, 1, 4}).reshape({B, Hkv, rep * K, hd});
        auto scores = torch::matmul(q5 * scale, cache.k[l].narrow(2, 0, S).transpose(2, 3))
                          .to(torch::kFloat)  // as masked_attention: scores and softmax in float32
                          .view({B, Hkv, rep, K, S});
        scores.add_(block_mask);
        auto weights = torch::softmax(scores, -1).to(cache.v[l].scalar_type()).view({B, Hkv, rep * K, S});
        auto y = torch::matmul(weights, cache.v[l].narrow(2, 0, S));
        return y.view({B, Hkv, rep, K, hd}).permute({0, 3, 1, 2, 4}).reshape({B * K, H, hd});
      });
  cache.length = S;
  return h.view({B, K, -1});
}

torch::Tensor DecodeStep::flat_positions(const torch::Tensor& ids_in, KvCache& cache) const {
  const int64_t B = ids_in.size(0), K = ids_in.size(1), R = B * K, p = cache.length, C = cache.capacity;
  const int H = n_heads_, Hkv = n_kv_heads_, hd = head_dim_, F = ffn_dim_, half = hd / 2;
  const int64_t dim = embedding_.size(1), V = embedding_.size(0), Nqkv = int64_t{H + 2 * Hkv} * hd;
  const auto ids = ids_in.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t* id = ids.data_ptr<int64_t>();
  for (int64_t r = 0; r < R; ++r)
    if (id[r] < 0 || id[r] >= V)
      fail("decode step", "token id " + std::to_string(id[r]) + " outside the vocabulary [0, " + std::to_string(V) + ")");
  // Rotation of row (b, j), position p + j: a row of the table (1D), or its
  // own angles (3D, from the ids and each row's <sov>, as positions() does).
  torch::Tensor cos3, sin3;
  if (config_.rope_3d()) {
    std::tie(cos3, sin3) = rope_3d_angles(config_, rope_axis_, rope_freq_, ids, p, &cache);
    cos3 = cos3.to(torch::kFloat).contiguous(), sin3 = sin3.to(torch::kFloat).contiguous();
  }
  auto angle = [&](const torch::Tensor& t3, const torch::Tensor& table, int64_t r) {
    return t3.defined() ? t3.data_ptr<float>() + r * half : table.data_ptr<float>() + (p + r % K) * half;
  };
  // The step on a team of threads: two at most for models whose products are
  // all under a million weights (the tiny ones: more threads were not
  // measured, and each would get a few column blocks), else every thread, as
  // decode_ops.h's products take for such sizes. Each product's column blocks,
  // the rows' rotations and cache writes, and attention's (row, key/value
  // head) tasks are shared out, the team meeting at a barrier wherever the
  // next part reads what another thread wrote (7 a layer). Each thread then
  // reads only its part of the weights, and every output is summed exactly
  // as on one thread, so the codes are the same.
  const bool large = dim * std::max<int64_t>(Nqkv, 2 * int64_t{F}) >= (int64_t{1} << 20);
  const int threads = !threaded_ ? 1 : large ? at::get_num_threads() : std::min(at::get_num_threads(), 2);
  // Every activation of the step in one buffer; the normed rows once a thread.
  auto out = torch::empty({B, K, dim}, embedding_.options());
  // ... and each thread's attention scores (p + K floats).
  auto arena = torch::empty({R * ((2 + threads) * dim + Nqkv + int64_t{H} * hd * 2 + 3 * int64_t{F}) + threads * (p + K)},
                            embedding_.options());
  float* h = arena.data_ptr<float>();
  float* h2 = h + R * dim;
  float* xn = h2 + R * dim;
  float* qkv = xn + threads * R * dim;
  float* q = qkv + R * Nqkv;
  float* att = q + R * H * hd;
  float* g = att + R * H * hd;
  float* gate = g + R * 2 * F;
  float* scores = gate + R * F;
  const float* emb = embedding_.data_ptr<float>();
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  const float eps = static_cast<float>(eps_);
  const bool* valid = cache.valid.defined() ? cache.valid.data_ptr<bool>() : nullptr;
  const int64_t valid_stride = cache.valid.defined() ? cache.valid.size(1) : 0;
  run_team(threads, [&](int w, int W, const std::function<void()>& sync) {
    auto part = [&](int64_t n) { return std::pair<int64_t, int64_t>{n * w / W, n * (w + 1) / W}; };
    auto product = [&](const float* x, const Product& pr, const float* residual, int64_t in, int64_t outs, float* y) {
      const auto [c0, c1] = part((outs + detail::kPackedColumns - 1) / detail::kPackedColumns);
      packed_matmul_range(x, pr.packed, residual, R, in, outs, c0, c1, y);
    };
    float *x = h, *x2 = h2, *xs = xn + w * R * dim;
    const auto [r0, r1] = part(R);
    const auto [t0, t1] = part(B * Hkv);
    for (int64_t r = r0; r < r1; ++r) std::copy_n(emb + id[r] * dim, dim, x + r * dim);
    sync();
    for (size_t l = 0; l < layers_.size(); ++l) {
      const auto& lw = layers_[l];
      detail::rms_rows(x, R, static_cast<int>(dim), eps, lw.qkv.norm.data_ptr<float>(), xs);
      product(xs, lw.qkv, nullptr, dim, Nqkv, qkv);
      float* kc = cache.k[l].data_ptr<float>();
      float* vc = cache.v[l].data_ptr<float>();
      sync();
      for (int64_t r = r0; r < r1; ++r) {
        float* row = qkv + r * Nqkv;
        detail::rotate_pairs(row, H + Hkv, hd, angle(cos3, cos_, r), angle(sin3, sin_, r));
        for (int64_t i = 0; i < int64_t{H} * hd; ++i) q[r * H * hd + i] = row[i] * scale;
        const int64_t b = r / K, at = p + r % K;
        for (int kv = 0; kv < Hkv; ++kv) {
          std::copy_n(row + int64_t{H + kv} * hd, hd, kc + ((b * Hkv + kv) * C + at) * hd);
          std::copy_n(row + int64_t{H + Hkv + kv} * hd, hd, vc + ((b * Hkv + kv) * C + at) * hd);
        }
      }
      sync();
      decode_attention_tasks(q, kc, vc, valid, valid_stride, K, H, Hkv, C, hd, p, t0, t1, att, scores + w * (p + K));
      sync();
      product(att, lw.wo, x, int64_t{H} * hd, dim, x2);
      sync();
      std::swap(x, x2);
      detail::rms_rows(x, R, static_cast<int>(dim), eps, lw.w13.norm.data_ptr<float>(), xs);
      product(xs, lw.w13, nullptr, dim, 2 * int64_t{F}, g);
      sync();
      detail::silu_gate(g + r0 * 2 * F, r1 - r0, F, gate + r0 * F);
      sync();
      product(gate, lw.w2, x, F, dim, x2);
      sync();
      std::swap(x, x2);
    }
    detail::rms_rows(x + r0 * dim, r1 - r0, static_cast<int>(dim), eps, norm_.data_ptr<float>(),
                     out.data_ptr<float>() + r0 * dim);
  });
  cache.length = p + K;
  return out;
}

void DecodeStep::set_f16_weights(bool on) {
  for (auto& layer : layers_)
    for (Product* p : {&layer.qkv, &layer.wo, &layer.w13, &layer.w2}) {
      if (!p->packed.defined()) continue;
      // Both ways exact: float16 to float32 always, back only where every weight is a float16 value.
      p->packed = p->packed.to(torch::kFloat);
      if (on) p->packed = packed_f16_if_exact(p->packed);
    }
}

bool DecodeStep::reads_f16_weights() const {
  return flat_ && std::all_of(layers_.begin(), layers_.end(), [](const Layer& l) {
           return l.qkv.packed.scalar_type() == torch::kHalf && l.wo.packed.scalar_type() == torch::kHalf &&
                  l.w13.packed.scalar_type() == torch::kHalf && l.w2.packed.scalar_type() == torch::kHalf;
         });
}

torch::Tensor DecodeStep::at_position(const torch::Tensor& ids, const torch::Tensor& pos, KvCache& cache,
                                      int64_t span) const {
  if (ids.dim() != 1 || pos.numel() != 1) fail("decode step", "expected token ids [B] and one position");
  if (flat_) fail("decode step", "at_position needs a step built with hand_kernels false (LibTorch's operations)");
  if (cache.k.size() != layers_.size() || ids.size(0) != cache.k[0].size(0))
    fail("decode step", "the cache is for another model or batch");
  if (span < 1 || span > cache.capacity || span > max_seq_len_)
    fail("decode step", "span " + std::to_string(span) + " outside the cache (" + std::to_string(cache.capacity) +
                            " positions)");
  const int64_t B = ids.size(0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  const auto where = pos.view({1});

  // Keys after pos, and padding keys other than pos itself, are masked.
  auto key = torch::arange(span, where.options());
  auto allowed = key.le(where).view({1, span});
  if (cache.valid.defined()) allowed = allowed & (cache.valid.narrow(1, 0, span) | key.eq(where).view({1, span}));
  auto mask = torch::zeros({B, span}, embedding_.options().dtype(torch::kFloat))
                  .masked_fill_(allowed.logical_not().expand({B, span}), -std::numeric_limits<float>::infinity())
                  .view({B, 1, 1, span});

  torch::Tensor rotation;  // [1, hd / 2], or [B, 1, hd / 2] with 3D positions
  if (config_.rope_3d()) {
    auto positions = grid_positions(config_, where.view({1, 1}).expand({B, 1}), cache.video_start);
    auto [cos, sin] = rope_angles(positions, rope_axis_, rope_freq_);
    rotation = torch::complex(cos, sin);
  } else {
    rotation = rotation_.index_select(0, where);
  }

  auto mm = [](const torch::Tensor& x, const Product& w) { return product(w, x, {}, false); };
  auto addmm = [](const torch::Tensor& r, const torch::Tensor& x, const Product& w) { return product(w, x, r, false); };
  return layers_step(
      embedding_.index_select(0, ids), rotation, mm, addmm,
      [&](size_t l, const torch::Tensor& k, const torch::Tensor& v) {
        cache.k[l].index_copy_(2, where, k.unsqueeze(2));
        cache.v[l].index_copy_(2, where, v.unsqueeze(2));
      },
      [&](size_t l, const torch::Tensor& q) {
        return masked_attention(q, cache.k[l].narrow(2, 0, span), cache.v[l].narrow(2, 0, span), mask, scale);
      });
}

}  // namespace loong::lm
