#include "loong/gen/code_sampler.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>

#include <torch/torch.h>

#include "loong/core/clock.h"
#include "loong/core/error.h"
#include "loong/ops/decode_ops.h"

namespace loong::gen {

namespace {
// Logits [R, V] of a batch -> those codes are drawn from: with guidance, the
// conditional rows [0, R/2) combined with the unconditional ones.
at::Tensor guide(const at::Tensor& logits, bool guided, double scale) {
  if (!guided) return logits;
  const int64_t B = logits.size(0) / 2;
  if (!logits.device().is_cpu() || logits.scalar_type() != at::kFloat || !logits.is_contiguous())
    return cfg_combine(logits.narrow(0, 0, B), logits.narrow(0, B, B), scale);
  // cfg_combine's arithmetic in one loop (three operations a code otherwise).
  const int64_t n = B * logits.size(1);
  auto out = torch::empty({B, logits.size(1)}, logits.options());
  const float *c = logits.data_ptr<float>(), *u = c + n;
  float* o = out.data_ptr<float>();
  const float s = static_cast<float>(scale);
  for (int64_t i = 0; i < n; ++i) o[i] = u[i] + s * (c[i] - u[i]);
  return out;
}

bool cpu_float(const at::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == at::kFloat; }

// The video head [V, dim] for video_logits' decoding loops: packed once a
// clip (pack_columns; in float16 where the weights are float16 values) where
// it is float32 on the CPU, else undefined.
at::Tensor pack_head(const at::Tensor& head, bool f16) {
  return cpu_float(head) ? pack_columns(head.t(), f16) : at::Tensor();
}

// The video codes' logits h head^T, h [..., dim]. On the CPU in float32 by
// the decoding loops of ops/decode_ops.h: a BLAS first copies the whole head
// into its own packed layout, which for a step's few rows costs more than the
// product; with `packed` (pack_head) the head's sums stay in registers
// (about half the time of rows_matmul's dot products).
at::Tensor video_logits(const at::Tensor& h, const at::Tensor& head, const at::Tensor& packed = {}) {
  if (!cpu_float(h) || !cpu_float(head) || !head.is_contiguous()) return torch::nn::functional::linear(h, head);
  auto sizes = h.sizes().vec();
  sizes.back() = head.size(0);
  const auto x = h.reshape({-1, h.size(-1)}).contiguous();
  if (!packed.defined()) return rows_matmul(x, head).view(sizes);
  auto out = torch::empty({x.size(0), head.size(0)}, x.options());
  packed_matmul_into(x.data_ptr<float>(), packed, nullptr, x.size(0), x.size(1), head.size(0),
                     out.data_ptr<float>());
  return out.view(sizes);
}
}  // namespace

PackedPrompts pack_prompts(const lm::Vocab& vocab, const std::vector<ClipPrompt>& prompts, bool guided, int64_t n) {
  std::vector<std::vector<int32_t>> rows;
  for (const auto& p : prompts) rows.push_back(vocab.sequence(p.text, p.prefix, false));
  if (guided)
    for (const auto& p : prompts) rows.push_back(vocab.sequence(p.guide_text, p.prefix, false));
  const int64_t R = static_cast<int64_t>(rows.size());
  PackedPrompts out;
  for (const auto& r : rows) out.length = std::max<int64_t>(out.length, static_cast<int64_t>(r.size()));
  const int64_t P = out.length;
  out.tokens = torch::full({R, P}, vocab.pad(), torch::kLong);
  out.valid = torch::zeros({R, P + n}, torch::kBool);
  auto acc = out.tokens.accessor<int64_t, 2>();
  for (int64_t i = 0; i < R; ++i) {
    const auto& r = rows[static_cast<size_t>(i)];
    const int64_t pad = P - static_cast<int64_t>(r.size());
    for (size_t j = 0; j < r.size(); ++j) acc[i][pad + static_cast<int64_t>(j)] = r[j];
    out.valid[i].narrow(0, pad, P + n - pad).fill_(true);
  }
  return out;
}

CodeSampler::CodeSampler(lm::Llama model, lm::Vocab vocab, SamplingOptions options)
    : model_(std::move(model)), vocab_(vocab), options_(options), gen_(make_generator(options.seed)) {
  validate(options_);
  if (model_->config.text_vocab != vocab_.text_size() || model_->config.video_vocab != vocab_.video_size())
    fail("language model", "its vocabulary (" + std::to_string(model_->config.text_vocab) + " text + " +
                               std::to_string(model_->config.video_vocab) + " video) does not match the tokenizers' (" +
                               std::to_string(vocab_.text_size()) + " + " + std::to_string(vocab_.video_size()) + ")");
  model_->eval();
}

int64_t CodeSampler::positions_needed(const std::vector<ClipPrompt>& prompts, int64_t n) const {
  size_t longest = 0;
  for (const auto& p : prompts)
    longest = std::max(longest, std::max(p.text.size(), p.guide_text.size()) + p.prefix.size());
  return lm::Vocab::prefix_length(static_cast<int64_t>(longest)) + n;
}

at::Tensor CodeSampler::generate(const std::vector<ClipPrompt>& prompts, int64_t n,
                                 const std::function<void(int64_t)>& on_step) {
  if (prompts.empty()) fail("generation", "no prompts");
  if (n < 1) fail("generation", "nothing to generate (n = " + std::to_string(n) + ")");
  for (const auto& p : prompts)
    if (p.prefix.size() != prompts[0].prefix.size())
      fail("generation", "every prompt of a batch needs the same number of video prefix tokens");
  const int64_t needed = positions_needed(prompts, n);
  const int64_t max_len = model_->config.max_seq_len;
  if (needed > max_len)
    fail("prompt", "too long: the text, " + std::to_string(prompts[0].prefix.size()) + " prefix codes and " +
                       std::to_string(n) + " new codes need " + std::to_string(needed) +
                       " positions but the model's max_seq_len is " + std::to_string(max_len) + "; shorten the prompt");

  c10::InferenceMode guard;
  const auto device = model_->output->weight.device();
  const bool guided = options_.guided();
  const int64_t B = static_cast<int64_t>(prompts.size()), R = guided ? 2 * B : B;

  const auto packed = pack_prompts(vocab_, prompts, guided, n);
  const auto& tokens = packed.tokens;
  const int64_t P = packed.length;

  // The cache is allocated for the largest batch seen and reused after that.
  if (!cache_ || cache_->k[0].size(0) != R || cache_->capacity < P + n) {
    cache_ = std::make_unique<lm::KvCache>(model_->config, R, std::max<int64_t>(P + n, needed), device,
                                           model_->output->weight.scalar_type());
    ++cache_generation_;
  }
  cache_->length = 0;
  cache_->valid = torch::zeros({R, cache_->capacity}, torch::TensorOptions().dtype(torch::kBool).device(device));
  cache_->valid.narrow(1, 0, P + n).copy_(packed.valid);

  // On CUDA, and where asked, the codes are drawn on the device.
  const bool on_device = static_decode_ || device.is_cuda();
  if (on_device && (!device_gen_ || device_gen_->device() != device))
    device_gen_ = device_generator(device, options_.seed);

  auto out = torch::empty({B, n}, torch::kLong);
  auto t0 = std::chrono::steady_clock::now();
  auto h = model_->hidden(tokens.to(device), cache_.get(), 0);
  auto first = guide(video_logits(h.select(1, P - 1), video_head()), guided, options_.cfg_scale);
  auto codes = on_device ? sample_codes_on_device(first, options_, *device_gen_) : sample_codes(first, options_, gen_);
  synchronize(device);
  timings_.prefill_s += seconds_since(t0);
  timings_.prefill_tokens += R * P;
  if (on_step) on_step(0);

  t0 = std::chrono::steady_clock::now();
  if (on_device) {
    decode_static(codes, P, n, B, guided, out, on_step);
  } else if (spec_.enabled()) {
    decode_speculative(codes, prompts, P, n, guided, out, on_step);
  } else {
    decode_on_cpu(codes, P, n, guided, out, on_step);
  }
  timings_.decode_s += seconds_since(t0);
  if (on_device || !spec_.enabled()) {  // the speculative decode counts its own calls
    timings_.decoded_tokens += R * (n - 1);
    timings_.decode_calls += n - 1;
  }
  timings_.sampled += n;
  return out;
}

std::optional<lm::DecodeStep> CodeSampler::fused_step() const {
  // The fused step copies most of the weights (once a clip). It pays where a
  // step is bound by the cost of each small operation, that is for small
  // models; larger ones decode on their own weights, each read once a step.
  std::optional<lm::DecodeStep> step;
  if (reference_decode_) return step;
  if (decode_weights_ != "f32") {
    if (!fewer_bytes_step_) fewer_bytes_step_.emplace(model_, hand_kernels_, true, decode_weights_);
    return fewer_bytes_step_;
  }
  step.emplace(model_, hand_kernels_, share_weights_ || model_->parameter_count() > kFusedDecodeMaxParameters);
  step->set_threaded(threaded_);
  if (!f16_weights_) step->set_f16_weights(false);
  return step;
}

void CodeSampler::set_decode_weights(const std::string& type) {
  if (type != "f32" && type != "bf16" && type != "int8")
    fail("--decode-weights", "expected f32, bf16 or int8, got " + squote(type));
  if (type != "f32" && !model_->output->weight.device().is_cpu())
    fail("--decode-weights", type + " is for the CPU's decode step (CUDA decodes in bfloat16 already)");
  if (type != decode_weights_) fewer_bytes_step_.reset();
  decode_weights_ = type;
}

void CodeSampler::decode_on_cpu(at::Tensor codes, int64_t P, int64_t n, bool guided, at::Tensor& out,
                                const std::function<void(int64_t)>& on_step) {
  const auto device = cache_->k[0].device();
  const int64_t R = cache_->k[0].size(0), T = vocab_.text_size();
  const auto head = video_head();
  const auto packed = pack_head(head, f16_weights_);
  out.select(1, 0).copy_(codes);
  auto step = fused_step();
  torch::Tensor h;
  for (int64_t i = 1; i < n; ++i) {
    auto ids = codes + T;
    if (guided) ids = torch::cat({ids, ids});
    ids = ids.to(device);
    if (step)
      h = (*step)(ids, *cache_);
    else
      h = model_->hidden(ids.view({R, 1}), cache_.get(), P + i - 1).select(1, 0);
    codes = sample_codes(guide(video_logits(h, head, packed), guided, options_.cfg_scale), options_, gen_);
    out.select(1, i).copy_(codes);
    if (on_step) on_step(i);
  }
}

void CodeSampler::decode_speculative(at::Tensor codes, const std::vector<ClipPrompt>& prompts, int64_t P, int64_t n,
                                     bool guided, at::Tensor& out, const std::function<void(int64_t)>& on_step) {
  const auto device = cache_->k[0].device();
  const int64_t B = out.size(0), R = cache_->k[0].size(0), T = vocab_.text_size(), V = vocab_.video_size();
  const int64_t F = spec_.frame_codes;
  const int64_t L = static_cast<int64_t>(prompts[0].prefix.size());  // codes before the first new one
  const auto head = video_head();
  const auto packed = pack_head(head, f16_weights_);
  out.select(1, 0).copy_(codes);
  auto acc = out.accessor<int64_t, 2>();
  // Jacobi guesses: for each new position, the most likely code at the last
  // call that scored it (-1: none yet).
  std::vector<int64_t> guess(static_cast<size_t>(B * n), -1);
  std::vector<int64_t> draft;
  auto step = fused_step();  // scores the K positions in one pass over the weights
  int64_t i = 1;  // codes sampled so far
  while (i < n) {
    const int64_t K = std::min(spec_.draft, n - i);
    // Drafts for positions i .. i+K-1 of every item.
    draft.assign(static_cast<size_t>(B * K), -1);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t j = 0; j < K; ++j) {
        const int64_t pos = i + j;
        int64_t d = -1;
        if (F > 0 && L + pos - F >= 0) {  // the same cell one latent frame back
          const int64_t back = pos - F;
          d = back < 0 ? prompts[static_cast<size_t>(b)].prefix[static_cast<size_t>(L + back)]
              : back < i ? acc[b][back]
                         : draft[static_cast<size_t>(b * K + back - i)];
        }
        if (d < 0) d = guess[static_cast<size_t>(b * n + pos)];
        if (d < 0) d = j > 0 ? draft[static_cast<size_t>(b * K + j - 1)] : acc[b][i - 1];
        draft[static_cast<size_t>(b * K + j)] = d;
      }
    }
    // One call scores them all: inputs are the last code and the first K-1
    // drafts, at positions P+i-1 .. P+i+K-2, so output j is position i+j's.
    auto ids = torch::empty({B, K}, torch::kLong);
    auto ia = ids.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      ia[b][0] = acc[b][i - 1] + T;
      for (int64_t j = 1; j < K; ++j) ia[b][j] = draft[static_cast<size_t>(b * K + j - 1)] + T;
    }
    if (guided) ids = torch::cat({ids, ids});
    auto h = step ? step->positions(ids.to(device), *cache_)                 // [R, K, dim]
                  : model_->hidden(ids.to(device), cache_.get(), P + i - 1);
    auto logits = video_logits(h, head, packed).reshape({R, K * V});
    auto p = sampling_probs(guide(logits, guided, options_.cfg_scale).reshape({B * K, V}), options_);
    auto pa = p.accessor<float, 2>();
    const auto best = p.argmax(-1);
    auto ba = best.accessor<int64_t, 1>();
    auto u = torch::rand({B, K}, gen_);  // one uniform per decision
    auto ua = u.accessor<float, 2>();
    ++timings_.decode_calls;
    timings_.decoded_tokens += R * K;
    // Accept, per item, the drafts while the rule takes them; the first
    // rejected position gets a code from p without the draft.
    int64_t m = K;         // codes every item has for sure: the fewest any produced
    int64_t accepted = K;  // of which drafts, for every item
    for (int64_t b = 0; b < B; ++b) {
      int64_t j = 0;
      while (j < K) {
        const int64_t row = b * K + j, d = draft[static_cast<size_t>(row)];
        if (ua[b][j] < pa[row][d]) {  // accepted with probability p(d)
          acc[b][i + j++] = d;
          continue;
        }
        accepted = std::min(accepted, j);
        if (options_.top_k == 1) {
          acc[b][i + j++] = ba[row];
        } else {
          auto rest = p[row].clone();
          rest[d] = 0;
          acc[b][i + j++] = torch::multinomial(rest, 1, false, gen_).item<int64_t>();
        }
        break;
      }
      m = std::min(m, j);
      // Guesses for the positions after: what this call found most likely.
      for (int64_t q = 0; q < K; ++q) guess[static_cast<size_t>(b * n + i + q)] = ba[b * K + q];
    }
    // Items that went further keep only m codes this call: their later codes
    // are drawn again next call. Dropping them depends only on the other
    // items' draws, so each kept code is still exactly distributed.
    timings_.drafted += K;
    timings_.accepted += accepted;
    // Keys and values stay valid for the last code and the kept drafts before
    // the newest code: positions < P + i + m - 1.
    cache_->length = P + i + m - 1;
    for (int64_t q = 0; q < m; ++q)
      if (on_step) on_step(i + q);
    i += m;
  }
}

// What static decoding keeps between clips: the fused step's weights, the
// device buffers the graphs read and write, and the graphs, one per key span
// and guidance scale. Built again when the cache or the batch changes.
struct CodeSampler::StaticDecoder {
  StaticDecoder(const lm::Llama& model, int64_t c) : step(model, false), cache(c) {}
  lm::DecodeStep step;
  int64_t cache;  // the cache's generation (CodeSampler::cache_generation_)
  at::Tensor ids, pos, column, out;  // [R] next input ids, [1] their position, [1] their code's column, [B, capacity]
  at::Tensor valid, video_start;     // the cache's, in buffers that stay (prefill replaces the cache's tensors)
  std::map<std::pair<int64_t, double>, std::unique_ptr<CudaGraph>> graphs;
  CudaGraph* pool_owner = nullptr;
};

void CodeSampler::decode_static(const at::Tensor& first, int64_t P, int64_t n, int64_t B, bool guided, at::Tensor& out,
                                const std::function<void(int64_t)>& on_step) {
  auto& cache = *cache_;
  const auto device = cache.k[0].device();
  const int64_t R = cache.k[0].size(0), T = vocab_.text_size();
  if (!static_ || static_->cache != cache_generation_ || static_->out.size(0) != B) {
    static_ = std::make_shared<StaticDecoder>(model_, cache_generation_);
    const auto opts = torch::TensorOptions().dtype(torch::kLong).device(device);
    static_->ids = torch::zeros({R}, opts);
    static_->pos = torch::zeros({1}, opts);
    static_->column = torch::zeros({1}, opts);
    static_->out = torch::zeros({B, cache.capacity}, opts);
  }
  auto& d = *static_;
  // Graphs read the padding mask and the <sov> indices from fixed memory.
  for (auto [from, to] : {std::pair<at::Tensor*, at::Tensor*>{&cache.valid, &d.valid}, {&cache.video_start, &d.video_start}}) {
    if (!from->defined()) continue;
    if (to->defined() && to->sizes() == from->sizes()) {
      to->copy_(*from);
    } else {
      *to = from->clone();
      d.graphs.clear();  // they read the old buffer
      d.pool_owner = nullptr;
    }
    *from = *to;
  }
  auto next_ids = [&](const torch::Tensor& codes) {
    auto ids = codes + T;
    d.ids.copy_(guided ? torch::cat({ids, ids}) : ids);
  };
  next_ids(first);
  d.out.narrow(1, 0, 1).copy_(first.view({B, 1}));
  d.pos.fill_(P);
  d.column.fill_(1);

  const auto head = video_head();
  const auto options = options_;
  auto& gen = *device_gen_;
  // One step: its code goes to column `column` of out and becomes the next
  // input; the position and column move on. Everything stays on the device.
  auto body = [&, options](int64_t span) {
    auto logits = torch::nn::functional::linear(d.step.at_position(d.ids, d.pos, cache, span), head);
    auto codes = sample_codes_on_device(guide(logits, guided, options.cfg_scale), options, gen);
    d.out.index_copy_(1, d.column, codes.view({B, 1}));
    next_ids(codes);
    d.pos.add_(1);
    d.column.add_(1);
  };
  bool graphs = cuda_graphs_ && device.is_cuda() && cuda_graphs_available();
  for (int64_t i = 1; i < n; ++i) {
    const int64_t p = P + i - 1;
    const int64_t span = std::min(cache.capacity, (p / kStaticSpan + 1) * kStaticSpan);
    if (graphs) {
      const auto key = std::make_pair(span, options.cfg_scale);
      if (auto it = d.graphs.find(key); it != d.graphs.end()) {
        it->second->replay();
        ++graph_replays_;
      } else {
        // This step runs eagerly (it also warms up what capture must not
        // allocate lazily); the next steps of the span replay the graph.
        body(span);
        auto g = std::make_unique<CudaGraph>();
        try {
          g->capture([&] { body(span); }, {gen}, d.pool_owner);
        } catch (const std::exception& e) {
          // Capture records without running, so nothing was lost: this and
          // later clips decode the same steps without graphs.
          std::fprintf(stderr, "warning: CUDA graph capture failed, decoding without graphs: %s\n", e.what());
          graphs = cuda_graphs_ = false;
          if (on_step) on_step(i);
          continue;
        }
        if (!d.pool_owner) d.pool_owner = g.get();  // the graphs share one memory pool
        d.graphs.emplace(key, std::move(g));
        ++graphs_captured_;
      }
    } else {
      body(span);
    }
    if (on_step) on_step(i);
  }
  cache.length = P + n - 1;
  out.copy_(d.out.narrow(1, 0, n));  // the one copy to the host (and wait) of the clip
}

at::Tensor CodeSampler::video_head() const {
  return model_->output->weight.narrow(0, vocab_.text_size(), vocab_.video_size());
}

int64_t default_speculation(const lm::Llama& model, c10::Device device) {
  return device.is_cpu() && model->parameter_count() > kFusedDecodeMaxParameters ? 2 : 0;
}

void CodeSampler::set_speculation(SpeculationOptions s) {
  if (s.draft < 0) fail("--speculative", "codes per model call must be >= 0 (0 or 1: off), got " + std::to_string(s.draft));
  if (s.draft > 64) fail("--speculative", "at most 64 codes per model call, got " + std::to_string(s.draft));
  if (s.frame_codes < 0) fail("speculation", "codes per latent frame must be >= 0");
  spec_ = s;
}

void CodeSampler::set_cfg_scale(double scale) {
  auto o = options_;
  o.cfg_scale = scale;
  validate(o);
  options_ = o;
}

}  // namespace loong::gen
