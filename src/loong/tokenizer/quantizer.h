// Clustering vector quantisation (CVQ, Zheng & Vedaldi, ICCV 2023).
//
// Nearest code by cosine similarity; straight-through gradients; codebook loss
// |sg(z) - e|^2 and commitment beta |z - sg(e)|^2. While training, a running
// usage p_k <- decay p_k + (1 - decay) (share of the batch assigned to k) is
// kept, and every step each code moves toward its anchor, the batch feature
// closest to it, with weight exp(-p_k K 10 / (1 - decay) - 1e-3): codes in use
// barely move, unused ("dead") codes are re-initialised from encoder features.
#pragma once
#include <functional>
#include <memory>

#include <torch/nn.h>

namespace loong::tokenizer {

// Data-parallel training (tokenizer/trainer.cpp): the usage and anchors are
// those of the whole batch across ranks, as one process with it would have.
struct QuantizerSync {
  int rank = 0, world = 1;
  std::function<void(const torch::Tensor&)> sum, max;  // in place, across the ranks
};

struct QuantizerOutput {
  torch::Tensor z_q;             // [N, D], straight-through: forward = code, backward = identity
  torch::Tensor indices;         // [N] int64
  torch::Tensor codebook_loss;   // scalar
  torch::Tensor commitment_loss; // scalar (already times beta)
  double perplexity = 0;         // exp(entropy) of the batch's code histogram
  int64_t codes_used = 0;        // distinct codes in the batch
};

struct CvqQuantizerImpl : torch::nn::Module {
  CvqQuantizerImpl(int codebook_size, int dim, double beta, double decay);
  // z: [N, D]. In training mode also updates usage and re-initialises dead codes.
  QuantizerOutput forward(const torch::Tensor& z);
  // Nearest code by cosine similarity, no gradients or updates: [N, D] -> [N]
  torch::Tensor lookup(const torch::Tensor& z) const;
  // Codes by index: [...] -> [..., D]
  torch::Tensor embed(const torch::Tensor& indices) const;

  // Cosine similarity of features to codes, no gradients: [N, D] -> [N, K]
  torch::Tensor similarity(const torch::Tensor& z) const;

  torch::nn::Embedding embedding{nullptr};  // weight [K, D]
  torch::Tensor usage;                      // buffer [K]: running usage p
  int codebook_size, dim;
  double beta, decay;
  std::shared_ptr<QuantizerSync> sync;      // null: this process's batch is the whole batch
};
TORCH_MODULE(CvqQuantizer);

// exp(entropy) of a distribution over codes (probs [K] summing to 1): the
// number of equally used codes that would give the same entropy. `eps` keeps
// log(0) finite (training: 1e-10; `tokenizer eval` reports with 1e-12).
double code_perplexity(const torch::Tensor& probs, double eps = 1e-10);

}  // namespace loong::tokenizer
