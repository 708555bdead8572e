// The LLaMA decoder (docs/method.md §3, §6): token embedding, pre-norm blocks of
// RMSNorm -> causal self-attention with rotary positions (optionally
// grouped-query) and RMSNorm -> SwiGLU MLP, a final RMSNorm and an untied
// output head. Parameter names follow Meta's PyTorch LLaMA state_dict
// (tok_embeddings.weight, layers.N.attention.wq.weight, layers.N.feed_forward.w1.weight,
// layers.N.attention_norm.weight, norm.weight, output.weight), and rotary
// embeddings pair neighbouring channels as Meta's code does, so weights move
// between this project and Python through safetensors unchanged.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn.h>

#include "loong/lm/config.h"

namespace loong::lm {

struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// Rotary tables for positions [start, start + length): cos and sin, each
// [length, head_dim / 2], frequency i = theta^(-2i / head_dim).
std::pair<torch::Tensor, torch::Tensor> rope_tables(int head_dim, int64_t start, int64_t length, double theta,
                                                    torch::Device device = torch::kCPU);
// x [B, T, H, head_dim]: rotates each channel pair (2i, 2i+1) by angle pos * freq_i.
// cos and sin are [T, head_dim / 2] (every row at the same positions) or
// [B, T, head_dim / 2].
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// Rotary positions int64 [B, T, 3] of tokens [B, T] at sequence indices
// [start, start + T): (frame, row, column). Text, specials and padding sit at
// (i, i, i), so 1D models get their index on every axis. With 3D positions
// (config.rope "3d", grid R x C), the k-th video token after a row's <sov> at
// index s sits at s + 1 + (k / (R C), (k % (R C)) / C, k % C): a latent frame
// advances every axis' origin by one, not by R C. Left padding shifts every
// axis alike, so rotary attention (relative) does not see it.
// video_start int64 [B] holds each row's <sov> index from earlier chunks (-1:
// none yet) and is updated from this one.
torch::Tensor rope_positions(const LmConfig& config, const torch::Tensor& tokens, int64_t start,
                             torch::Tensor& video_start);
// The 3D positions [B, T, 3] of sequence indices idx int64 [B, T], each row's
// <sov> at video_start [B] (-1: none): rope_positions' second half, for a
// decoding step whose index is a device tensor.
torch::Tensor grid_positions(const LmConfig& config, const torch::Tensor& idx, const torch::Tensor& video_start);
// Per rotary pair: the position axis it turns with (int64 [head_dim / 2]) and
// its frequency (double). 1D: every pair on axis 0 at theta^(-2i / head_dim),
// LLaMA's. 3D: rows and columns get a third of the pairs each, frames (which
// also order the text) the rest; each run has its own ladder theta^(-k / n),
// k < n, so each axis has a pair turning one radian a step.
std::pair<torch::Tensor, torch::Tensor> rope_pairs(const LmConfig& config, torch::Device device);
// cos and sin, float [B, T, head_dim / 2], of positions [B, T, 3].
std::pair<torch::Tensor, torch::Tensor> rope_angles(const torch::Tensor& positions, const torch::Tensor& axis,
                                                    const torch::Tensor& freq);

// Keys and values of earlier positions, for generation one token at a time.
// Preallocated per layer: [B, n_kv_heads, capacity, head_dim].
struct KvCache {
  KvCache(const LmConfig& c, int64_t batch, int64_t capacity, torch::Device device,
          torch::Dtype dtype = torch::kFloat);
  std::vector<torch::Tensor> k, v;
  // Optional bool [B, capacity]: false marks padding positions (left-padded
  // prompts of different lengths in one batch), which no query attends to.
  // Rotary positions are relative, so a prompt padded by P on the left gives
  // the same outputs as the same prompt unpadded.
  torch::Tensor valid;
  // int64 [B]: each row's <sov> index, for 3D rotary positions (-1: none yet).
  // Set by the chunk that holds it; reset when a chunk starts at 0.
  torch::Tensor video_start;
  int64_t length = 0;    // positions filled
  int64_t capacity = 0;
};

struct AttentionImpl : torch::nn::Module {
  explicit AttentionImpl(const LmConfig& c);
  // x [B, T, dim] at positions [start, start + T); with a cache, keys and
  // values of positions < start come from it and this call's are appended.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        KvCache* cache, int layer, int64_t start);
  torch::nn::Linear wq{nullptr}, wk{nullptr}, wv{nullptr}, wo{nullptr};
  int n_heads, n_kv_heads, head_dim;
};
TORCH_MODULE(Attention);

struct FeedForwardImpl : torch::nn::Module {  // SwiGLU: w2(silu(w1 x) * w3 x)
  FeedForwardImpl(int dim, int hidden);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear w1{nullptr}, w2{nullptr}, w3{nullptr};
};
TORCH_MODULE(FeedForward);

struct TransformerBlockImpl : torch::nn::Module {
  explicit TransformerBlockImpl(const LmConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        KvCache* cache, int layer, int64_t start);
  Attention attention{nullptr};
  FeedForward feed_forward{nullptr};
  RMSNorm attention_norm{nullptr}, ffn_norm{nullptr};
};
TORCH_MODULE(TransformerBlock);

struct LlamaImpl : torch::nn::Module {
  explicit LlamaImpl(LmConfig config);  // validates; random init (std 0.02, residual outputs scaled)

  // tokens [B, T] (int64) at positions [start, start + T) -> final hidden
  // states [B, T, dim] (after the last RMSNorm). Throws for ids outside the
  // vocabulary or positions past max_seq_len.
  torch::Tensor hidden(const torch::Tensor& tokens, KvCache* cache = nullptr, int64_t start = 0);
  // -> logits [B, T, vocab]
  torch::Tensor forward(const torch::Tensor& tokens, KvCache* cache = nullptr, int64_t start = 0);
  torch::Tensor logits(const torch::Tensor& hidden) { return output(hidden); }

  int64_t parameter_count() const;

  LmConfig config;
  // Training without a cache: recompute each block's activations in the
  // backward pass instead of keeping them (ops/checkpoint.h).
  bool checkpoint_blocks = false;
  torch::nn::Embedding tok_embeddings{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  torch::nn::Linear output{nullptr};

 private:
  // Rotary tables for positions [0, max_seq_len), built once per device (not
  // parameters: Meta's state_dict has none), so a decode step only slices them.
  // 3D positions differ per row and are turned into angles per call from the
  // pairs' axes and frequencies.
  torch::Tensor rope_cos_, rope_sin_, rope_axis_, rope_freq_;
};
TORCH_MODULE(Llama);

// One decoding step for a sampler: the same function as
//   model->hidden(ids.view({B, 1}), &cache, cache.length).select(1, 0)
// (tested to 1e-5), with about a third of the operations. Decoding one token
// on a CPU is bound by the fixed cost of each small operation and by reading
// the cache, not by arithmetic, so this step fuses what hidden() keeps apart
// for readability and training: q, k and v in one product, each RMSNorm's
// weight folded into the product after it, the residual adds into the output
// products (addmm), rotary embedding as one complex product for q and k
// together, and the padding mask built once a step instead of once a layer.
// It copies the layers' weights when constructed (the embedding and the final
// norm weight are shared): build a new one after the weights change. With
// `share_weights` it reads the model's own weights instead (nothing copied,
// nothing fused; for large models, whose copy would double their memory and
// whose steps are bound by reading the weights, not by small operations).
// `weights` "bf16" or "int8" (per-row scales; ops/decode_ops.h quantize_rows)
// reads copies of the layers' weights in fewer bytes instead (the share_weights
// layout; on the CPU's hand-written loops a step reads half or a quarter of
// the bytes; LibTorch's operations widen them back to float32 each product).
class DecodeStep {
 public:
  // hand_kernels false: LibTorch's general operations on the CPU too, as on
  // other devices, instead of the loops of ops/decode_ops.h (for tests and
  // benchmarks).
  explicit DecodeStep(const Llama& model, bool hand_kernels = true, bool share_weights = false,
                      const std::string& weights = "f32");
  // ids int64 [B] at position cache.length -> final hidden states [B, dim]
  // (after the last RMSNorm); their keys and values are appended to the
  // cache. The ids are not range-checked (a sampler draws them from the
  // vocabulary); index_select still refuses one outside it.
  torch::Tensor operator()(const torch::Tensor& ids, KvCache& cache) const;
  // The same for K positions at once: ids int64 [B, K] at positions
  // cache.length .. + K - 1 -> final hidden states [B, K, dim], position j
  // attending to the cache and positions <= j (speculative decoding scores a
  // draft this way: each weight is read once for all K).
  torch::Tensor positions(const torch::Tensor& ids, KvCache& cache) const;

  // The same step with every shape fixed and the position held on the
  // device, so that a CUDA graph can replay it (gen/code_sampler.h): ids [B]
  // and pos int64 [1] (the position filled; read, not changed) live on the
  // model's device. Keys are read from cache positions [0, span), those after
  // pos masked, so one span serves every position below it; the caller keeps
  // pos < span <= cache.capacity and cache.length. LibTorch's general
  // operations only, no host synchronisation: a step built with hand_kernels
  // false (one built with them for a float32 CPU model refuses).
  torch::Tensor at_position(const torch::Tensor& ids, const torch::Tensor& pos, KvCache& cache, int64_t span) const;

  // Whether the CPU loops (float32 weights copied: models up to 64 M
  // parameters) run on a team of threads where at::get_num_threads() gives
  // them (default on): each product's columns, the rows and attention's tasks
  // shared out (flat_positions). The outputs are the same either way; off is
  // the one-thread step, for benchmarks' baselines.
  void set_threaded(bool on) { threaded_ = on; }
  // Whether those loops read weights that are float16 values (a bundle's) in
  // float16 (default on): half the bytes, the same outputs bit for bit. Off:
  // in float32, for benchmarks' baselines.
  void set_f16_weights(bool on);
  // Whether they do now (every product packed in float16).
  bool reads_f16_weights() const;

 private:
  // One product x W^T of the step.
  struct Product {
    torch::Tensor t;                  // copied: W^T [in, out], contiguous, the RMSNorm weight folded in
    torch::Tensor packed;             // flat_positions' copy instead: W^T as ops/decode_ops.h pack_columns lays it
                                      // out (float16 where the weights are float16 values), norm not folded in
    std::vector<torch::Tensor> rows;  // shared: the modules' own weights [out_i, in], their outputs side by side
                                      // (or bf16/int8 copies of them)
    std::vector<torch::Tensor> scales;  // int8 rows: float32 [out_i] each
    torch::Tensor norm;               // rows and packed: the RMSNorm weight x is scaled by first (undefined: none)
  };
  struct Layer {
    Product qkv, wo, w13, w2;
  };
  // x W^T (+ r when defined), by the loops of decode_ops.h when by_hand.
  static torch::Tensor product(const Product& p, const torch::Tensor& x, const torch::Tensor& r, bool by_hand);
  // The layers and the final norm of one step from the embedded ids h [B, dim]
  // and the rotation; what differs between operator() and at_position comes
  // in as functions: the products mm(x, w) and addmm(r, x, w), store(l, k, v)
  // of the new keys and values [B, Hkv, hd], and attend(l, q [B, H, hd]).
  template <class Mm, class Addmm, class Store, class Attend>
  torch::Tensor layers_step(torch::Tensor h, const torch::Tensor& rotation, Mm mm, Addmm addmm, Store store,
                            Attend attend) const;
  // positions() as loops over raw float32 arrays, no LibTorch operation
  // between the embedding and the output (copied float32 weights on the CPU):
  // a small model's step is otherwise mostly the fixed cost of its some 150
  // operations (docs/benchmarks.md, "The decode step without LibTorch's
  // operations"). positions() has checked the ids' and the cache's shapes.
  torch::Tensor flat_positions(const torch::Tensor& ids, KvCache& cache) const;
  std::vector<Layer> layers_;
  torch::Tensor embedding_, norm_, rotation_;  // rotation_: complex [max_seq_len, head_dim / 2] (1D positions)
  torch::Tensor cos_, sin_;                    // the same as float [max_seq_len, head_dim / 2], for flat_positions
  bool flat_ = false;                          // whether flat_positions can run (the cache is checked per call)
  bool threaded_ = true;
  torch::Tensor rope_axis_, rope_freq_;        // 3D positions
  int n_heads_, n_kv_heads_, head_dim_, ffn_dim_;
  double eps_;
  int64_t max_seq_len_;
  bool hand_kernels_;
  LmConfig config_;
};

}  // namespace loong::lm
