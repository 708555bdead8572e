#include "loong/lm/batch.h"

#include <algorithm>
#include <limits>

#include <torch/torch.h>

#include "loong/core/error.h"

namespace loong::lm {

int range_of_latent_frame(int t) { return t == 0 ? 0 : (t < 5 ? 1 : 2); }

const char* range_name(int r) {
  static const char* names[kRanges] = {"frame_1", "frames_2_17", "frames_18_65"};
  return r >= 0 && r < kRanges ? names[r] : "none";
}

std::vector<bool> draw_caption_dropout(size_t samples, double p, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<bool> drop(samples, false);
  if (p > 0)
    for (size_t i = 0; i < samples; ++i) drop[i] = u(rng) < p;
  return drop;
}

Batch make_batch(const std::vector<SampleView>& samples, const Vocab& vocab, const BatchOptions& o,
                 std::mt19937_64& rng) {
  return make_batch(samples, vocab, o, draw_caption_dropout(samples.size(), o.caption_dropout, rng));
}

Batch make_batch(const std::vector<SampleView>& samples, const Vocab& vocab, const BatchOptions& o,
                 const std::vector<bool>& drop, const std::vector<SampleView>* starts) {
  if (samples.empty()) fail("batch", "no samples");
  if (o.latent_frames < 1) fail("batch", "latent_frames must be at least 1");
  if (o.given_latent_frames < 0 || o.given_latent_frames >= o.latent_frames)
    fail("batch", "given latent frames must leave at least one to learn");
  if (drop.size() != samples.size()) fail("batch", "one dropout decision per sample is needed");
  if (starts && starts->size() != samples.size()) fail("batch", "one start per sample is needed");
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int64_t> video_start;  // index of the first video token in each sequence
  std::vector<int64_t> per_frame;
  for (size_t k = 0; k < samples.size(); ++k) {
    const auto& s = samples[k];
    if (s.frames < o.latent_frames)
      fail("batch", "a sample has " + std::to_string(s.frames) + " latent frames, the stage needs " +
                        std::to_string(o.latent_frames));
    std::vector<int32_t> text;
    if (!drop[k]) text.assign(s.text, s.text + s.text_len);
    const int64_t n = int64_t(o.latent_frames) * s.tokens_per_frame();
    std::vector<int32_t> video(s.video, s.video + n);
    if (starts) {
      const auto& d = (*starts)[k];
      if (d.height != s.height || d.width != s.width || d.frames < o.given_latent_frames)
        fail("batch", "a spliced start's latent grid differs from its sample's");
      std::copy(d.video, d.video + int64_t(o.given_latent_frames) * d.tokens_per_frame(), video.begin());
    }
    seqs.push_back(vocab.sequence(text, video));
    video_start.push_back(Vocab::prefix_length(static_cast<int64_t>(text.size())));
    per_frame.push_back(s.tokens_per_frame());
  }
  int64_t L = 0;
  for (const auto& q : seqs) L = std::max<int64_t>(L, static_cast<int64_t>(q.size()) - 1);
  const int64_t B = static_cast<int64_t>(seqs.size());
  Batch b;
  b.input = torch::full({B, L}, vocab.pad(), torch::kLong);
  b.target = torch::full({B, L}, vocab.pad(), torch::kLong);
  b.weight = torch::zeros({B, L}, torch::kFloat);
  b.range = torch::full({B, L}, -1, torch::kLong);
  auto in = b.input.accessor<int64_t, 2>();
  auto tg = b.target.accessor<int64_t, 2>();
  auto w = b.weight.accessor<float, 2>();
  auto rg = b.range.accessor<int64_t, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const auto& q = seqs[i];
    b.tokens += static_cast<int64_t>(q.size()) - 1;
    for (size_t p = 0; p + 1 < q.size(); ++p) {
      in[i][p] = q[p];
      tg[i][p] = q[p + 1];
      const int64_t j = static_cast<int64_t>(p) + 1 - video_start[i];  // video token index of the target
      if (j >= 0 && vocab.is_video(q[p + 1])) {
        const int t = static_cast<int>(j / per_frame[i]);
        if (t < o.given_latent_frames) continue;  // given, as at generation: nothing to learn
        w[i][p] = static_cast<float>(t < o.weighted_frames ? 1 + o.lambda : 1.0);
        rg[i][p] = range_of_latent_frame(t);
        ++b.video_tokens;
      }
    }
  }
  return b;
}

LossParts video_loss(const torch::Tensor& logits, const Batch& b) {
  const auto V = logits.size(-1);
  auto ce = torch::nn::functional::cross_entropy(
                logits.reshape({-1, V}).to(torch::kFloat), b.target.reshape({-1}).to(logits.device()),
                torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
                .view(b.target.sizes());
  LossParts out;
  const auto w = b.weight.to(logits.device());
  out.loss = (ce * w).sum() / static_cast<double>(std::max<int64_t>(1, b.video_tokens));
  auto ce_cpu = ce.detach().to(torch::kCPU);
  for (int r = 0; r < kRanges; ++r) {
    auto mask = b.range.eq(r);
    out.range_tokens[r] = mask.sum().item<int64_t>();
    out.range_loss[r] = out.range_tokens[r] ? ce_cpu.masked_select(mask).mean().item<double>()
                                            : std::numeric_limits<double>::quiet_NaN();
  }
  return out;
}

}  // namespace loong::lm
