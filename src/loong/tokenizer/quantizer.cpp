#include "loong/tokenizer/quantizer.h"

#include <torch/torch.h>

namespace F = torch::nn::functional;

namespace loong::tokenizer {

CvqQuantizerImpl::CvqQuantizerImpl(int k, int d, double b, double dec)
    : codebook_size(k), dim(d), beta(b), decay(dec) {
  embedding = register_module("embedding", torch::nn::Embedding(k, d));
  {
    torch::NoGradGuard ng;
    embedding->weight.uniform_(-1.0 / k, 1.0 / k);
  }
  usage = register_buffer("usage", torch::zeros({k}));
}

torch::Tensor CvqQuantizerImpl::similarity(const torch::Tensor& z) const {
  torch::NoGradGuard ng;
  return F::normalize(z.detach(), F::NormalizeFuncOptions().dim(1))
      .matmul(F::normalize(embedding->weight, F::NormalizeFuncOptions().dim(1)).t());
}

torch::Tensor CvqQuantizerImpl::lookup(const torch::Tensor& z) const { return similarity(z).argmax(1); }

torch::Tensor CvqQuantizerImpl::embed(const torch::Tensor& indices) const {
  return F::normalize(F::embedding(indices, embedding->weight), F::NormalizeFuncOptions().dim(-1));
}

QuantizerOutput CvqQuantizerImpl::forward(const torch::Tensor& z) {
  // z: [N, D]; similarity: [N, K]
  const torch::Tensor sim = similarity(z);
  QuantizerOutput out;
  out.indices = sim.argmax(1);
  // Features and codes are compared, and passed on, as unit vectors: the
  // distance is cosine, and the decoder never sees a code's length, so codes
  // cannot win or lose by magnitude (the l2-normalised codes of ViT-VQGAN).
  const auto norm = F::NormalizeFuncOptions().dim(1);
  auto zn = F::normalize(z, norm);
  auto e = F::normalize(embedding->weight.index_select(0, out.indices), norm);  // carries the codebook gradient
  out.codebook_loss = (e - zn.detach()).pow(2).mean();
  out.commitment_loss = beta * (zn - e.detach()).pow(2).mean();
  out.z_q = zn + (e - zn).detach();

  torch::NoGradGuard ng;
  auto counts = torch::bincount(out.indices, {}, codebook_size).to(z.scalar_type());
  int64_t n = z.size(0);
  const bool across = sync && is_training();
  if (across) {  // the whole batch's histogram
    auto cn = torch::cat({counts.to(torch::kFloat), torch::full({1}, static_cast<double>(n), torch::kFloat).to(z.device())});
    sync->sum(cn);
    counts = cn.narrow(0, 0, codebook_size).to(z.scalar_type());
    n = static_cast<int64_t>(cn[codebook_size].item<double>());
  }
  auto probs = counts / std::max<int64_t>(1, n);
  out.perplexity = code_perplexity(probs);
  out.codes_used = (counts > 0).sum().item<int64_t>();
  if (is_training()) {
    usage.mul_(decay).add_(probs.to(usage.scalar_type()), 1 - decay);
    // Anchor of code k: the batch feature most similar to it.
    const auto best = sim.argmax(0);
    auto anchors = z.detach().index_select(0, best);  // [K, D]
    if (across) {
      // The most similar feature of all ranks' batches; on a tie the lowest
      // rank's, as the first index of the whole batch would be.
      auto mine = sim.gather(0, best.unsqueeze(0)).squeeze(0).to(torch::kFloat);
      auto top = mine.clone();
      sync->max(top);
      auto claim = torch::where(mine == top, torch::full_like(mine, sync->world - sync->rank), torch::zeros_like(mine));
      auto winner = claim.clone();
      sync->max(winner);
      auto own = (winner == static_cast<double>(sync->world - sync->rank)).to(anchors.scalar_type()).unsqueeze(1);
      anchors = (anchors * own).to(torch::kFloat).contiguous();
      sync->sum(anchors);
      anchors = anchors.to(z.scalar_type());
    }
    auto w = torch::exp(-(usage * codebook_size * 10) / (1 - decay) - 1e-3).unsqueeze(1);  // [K, 1]
    embedding->weight.mul_(1 - w).add_(anchors * w);
  }
  return out;
}

double code_perplexity(const torch::Tensor& probs, double eps) {
  return torch::exp(-(probs * (probs + eps).log()).sum()).item<double>();
}

}  // namespace loong::tokenizer
