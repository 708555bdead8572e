#include "loong/tokenizer/frame_decoder.h"

#include <torch/torch.h>

#include "loong/ops/decode_ops.h"
#include "loong/tokenizer/layers.h"
#include "loong/tokenizer/model.h"

namespace loong::tokenizer {

namespace {

constexpr auto kChannelsLast = at::MemoryFormat::ChannelsLast;

// One causal convolution (stride 1) as one 2D convolution per temporal tap.
struct Conv {
  std::vector<at::Tensor> taps;  // taps[k]: weight[:, :, k] as [O, C, kh, kw], channels-last, in the decoder's type
  at::Tensor bias;               // added once, with the newest tap
  std::vector<int64_t> padding;  // spatial: (kh / 2, kw / 2), what CausalConv3d pads

  // x: B items of T frames each, [B*T, C, H, W] -> [B*T, O, H, W], plus
  // `residual` (same shape) when defined, then SiLU when `silu`.
  at::Tensor run(const at::Tensor& x, int64_t B, const at::Tensor& residual = {}, bool silu = false) const {
    const auto kt = static_cast<int64_t>(taps.size());
    auto y = at::conv2d(x, taps.back(), bias, {1, 1}, padding);
    const int64_t T = x.size(0) / B;
    for (int64_t b = 0; b < B; ++b) {
      // Tap k reads the frame `shift` = kt - 1 - k before; where there is
      // none, the causal padding's zeros, so it adds nothing.
      std::vector<at::Tensor> older;  // by shift
      for (int64_t shift = 1; shift < kt; ++shift)
        older.push_back(shift < T ? at::conv2d(x.narrow(0, b * T, T - shift), taps[kt - 1 - shift], {}, {1, 1}, padding)
                                  : at::Tensor());
      auto yb = y.narrow(0, b * T, T);
      auto rb = residual.defined() ? residual.narrow(0, b * T, T) : at::Tensor();
      if (kt == 1 && !rb.defined() && !silu) continue;  // nothing to add
      if (sum_frame_taps_supported(yb, older, rb)) {  // one pass (ops/decode_ops.h)
        sum_frame_taps(yb, older, rb, silu);
        continue;
      }
      for (size_t s = 1; s <= older.size(); ++s)
        if (older[s - 1].defined()) yb.narrow(0, s, T - s).add_(older[s - 1]);
      if (rb.defined()) yb.add_(rb);
      if (silu) at::silu_(yb);
    }
    return y;
  }
};

Conv make_conv(const at::Tensor& weight, const at::Tensor& bias, at::ScalarType dtype) {
  Conv c;
  for (int64_t k = 0; k < weight.size(2); ++k)
    c.taps.push_back(weight.select(2, k).detach().to(dtype).contiguous(kChannelsLast));
  if (bias.defined()) c.bias = bias.detach().to(dtype);
  c.padding = {weight.size(3) / 2, weight.size(4) / 2};
  return c;
}

struct Norm {
  int groups = 0;  // 0: none
  at::Tensor weight, bias;
  at::Tensor run(const at::Tensor& x) const {
    if (groups == 0) return x;
    // In float32, as autocast runs group_norm: LibTorch's bfloat16 group norm
    // sums in bfloat16 (errors above 1 on unit-scale inputs, checked on 1.13).
    return at::group_norm(x.to(at::kFloat), groups, weight, bias, 1e-5).to(x.scalar_type());
  }
};

Norm make_norm(const FrameNormImpl& n) {
  Norm out;
  if (n.kind == NormKind::None) return out;
  out.groups = n.groups;
  out.weight = n.weight.detach().to(at::kFloat);
  out.bias = n.bias.detach().to(at::kFloat);
  return out;
}

bool unit_stride(const CausalConv3dImpl& c) { return c.stride == std::array<int64_t, 3>{1, 1, 1}; }

}  // namespace

struct FrameDecoder::Layer {
  virtual ~Layer() = default;
  virtual at::Tensor run(const at::Tensor& x, int64_t& B) const = 0;  // B: items; frames per item may change
};

namespace {

struct ConvLayer : FrameDecoder::Layer {
  Conv conv;
  at::Tensor run(const at::Tensor& x, int64_t& B) const override { return conv.run(x, B); }
};

struct ResLayer : FrameDecoder::Layer {
  Norm norm1, norm2;
  Conv conv1, conv2, shortcut;  // shortcut.taps empty: identity
  // x is the previous layer's output, which nothing else reads: with a
  // shortcut convolution, SiLU runs in place on it (one allocation fewer).
  at::Tensor run(const at::Tensor& x, int64_t& B) const override {
    at::Tensor skip = x, a = norm1.run(x);
    if (!shortcut.taps.empty()) {
      skip = shortcut.run(x, B);
      a = at::silu_(a);
    } else {
      a = at::silu(a);
    }
    // SiLU goes into the first convolution's sums where no norm comes between.
    auto h = conv1.run(a, B, {}, norm2.groups == 0);
    if (norm2.groups != 0) {
      h = norm2.run(h);
      at::silu_(h);
    }
    return conv2.run(h, B, skip);
  }
};

struct UpLayer : FrameDecoder::Layer {
  Conv conv;  // to 4C channels: channel c*4 + i*2 + j goes to pixel (2h + i, 2w + j) of channel c
  bool temporal = false;
  at::Tensor run(const at::Tensor& x, int64_t& B) const override {
    auto y = conv.run(x, B);
    const int64_t T = y.size(0) / B, C = y.size(1) / 4, H = y.size(2), W = y.size(3);
    // Frame-major memory [B, T, H, W, C, i, j] -> [B, T, H, i, W, j, C]: one copy.
    auto v = y.permute({0, 2, 3, 1}).reshape({B, T, H, W, C, 2, 2}).permute({0, 1, 2, 5, 3, 6, 4});
    int64_t frames = T;
    if (temporal) {
      // Frame j of the 1 + 2(T - 1) output frames is input frame (j + 1) / 2
      // (each repeated, the first copy dropped), gathered in the same copy.
      frames = 2 * T - 1;
      auto idx = torch::arange(1, frames + 1, torch::kLong).div(2, "floor");
      v = v.index_select(1, idx);
    } else {
      v = v.contiguous();
    }
    return v.view({B * frames, 2 * H, 2 * W, C}).permute({0, 3, 1, 2});
  }
};

struct NormActLayer : FrameDecoder::Layer {
  Norm norm;
  at::Tensor run(const at::Tensor& x, int64_t& B) const override {
    auto y = norm.run(x);
    return at::silu_(y);
  }  // x: as above
};

}  // namespace

namespace {
// A parameter's version counter; inference tensors (made under
// c10::InferenceMode) have none and cannot change in place.
int64_t version_of(const at::Tensor& p) { return p.is_inference() ? -1 : static_cast<int64_t>(p._version()); }
}  // namespace

std::unique_ptr<FrameDecoder> FrameDecoder::build(VideoTokenizerImpl& model, c10::ScalarType dtype) {
  torch::NoGradGuard ng;
  std::unique_ptr<FrameDecoder> d(new FrameDecoder);
  d->dtype_ = dtype;
  for (const auto& child : model.decoder->children()) d->modules_.push_back(child.get());
  for (const auto& p : model.decoder->parameters()) d->versions_.emplace_back(p.storage(), version_of(p));
  auto unsupported = [&] {
    d->layers_.clear();
    return std::move(d);
  };
  for (const auto& child : model.decoder->children()) {
    if (auto c = std::dynamic_pointer_cast<CausalConv3dImpl>(child)) {
      if (!unit_stride(*c)) return unsupported();
      auto l = std::make_shared<ConvLayer>();
      l->conv = make_conv(c->conv->weight, c->conv->bias, dtype);
      d->layers_.push_back(l);
    } else if (auto r = std::dynamic_pointer_cast<ResBlock3dImpl>(child)) {
      if (!unit_stride(*r->conv1) || !unit_stride(*r->conv2)) return unsupported();
      auto l = std::make_shared<ResLayer>();
      l->norm1 = make_norm(*r->norm1);
      l->norm2 = make_norm(*r->norm2);
      l->conv1 = make_conv(r->conv1->conv->weight, r->conv1->conv->bias, dtype);
      l->conv2 = make_conv(r->conv2->conv->weight, r->conv2->conv->bias, dtype);
      if (r->shortcut) l->shortcut = make_conv(r->shortcut->weight, r->shortcut->bias, dtype);  // 1x1x1
      d->layers_.push_back(l);
    } else if (auto u = std::dynamic_pointer_cast<Upsample3dImpl>(child)) {
      if (!unit_stride(*u->conv)) return unsupported();
      auto l = std::make_shared<UpLayer>();
      l->conv = make_conv(u->conv->conv->weight, u->conv->conv->bias, dtype);
      l->temporal = u->st == 2;
      d->layers_.push_back(l);
    } else if (auto n = std::dynamic_pointer_cast<NormActImpl>(child)) {
      auto l = std::make_shared<NormActLayer>();
      l->norm = make_norm(*n->norm);
      d->layers_.push_back(l);
    } else {
      return unsupported();
    }
  }
  d->supported_ = true;
  return d;
}

bool FrameDecoder::current(VideoTokenizerImpl& model) const {
  const auto children = model.decoder->children();
  if (children.size() != modules_.size()) return false;
  for (size_t i = 0; i < children.size(); ++i)
    if (children[i].get() != modules_[i]) return false;
  const auto params = model.decoder->parameters();
  if (params.size() != versions_.size()) return false;
  for (size_t i = 0; i < params.size(); ++i)
    if (!params[i].storage().is_alias_of(versions_[i].first) || version_of(params[i]) != versions_[i].second)
      return false;
  return true;
}

at::Tensor FrameDecoder::forward(const at::Tensor& latents) const {
  torch::NoGradGuard ng;
  const int64_t T = latents.size(2), H = latents.size(3), W = latents.size(4);
  int64_t B = latents.size(0);
  // [B, D, T, H, W] -> frame-major [B, T, H, W, D] -> [B*T, D, H, W]
  // channels-last; always a copy, since layers may write their input in place.
  auto x = latents.permute({0, 2, 3, 4, 1}).to(dtype_, false, true, at::MemoryFormat::Contiguous)
               .view({B * T, H, W, -1}).permute({0, 3, 1, 2});
  for (const auto& l : layers_) x = l->run(x, B);
  // [B*T, 3, H, W] channels-last -> [B, T, H, W, 3] -> [B, 3, T, H, W] (a view)
  const int64_t frames = x.size(0) / B;
  return x.permute({0, 2, 3, 1}).reshape({B, frames, x.size(2), x.size(3), x.size(1)}).permute({0, 4, 1, 2, 3});
}

}  // namespace loong::tokenizer
