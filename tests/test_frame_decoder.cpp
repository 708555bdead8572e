// The tokenizer's decoder frame by frame (tokenizer/frame_decoder.h): the
// frames of the model's own decode, for every layer kind, batch and length;
// bfloat16 close to them; its copy of the weights made again when they
// change; decoders it does not cover decoded by the model.
#include <torch/torch.h>

#include "loong/ops/decode_ops.h"
#include "loong/tokenizer/frame_decoder.h"
#include "loong/tokenizer/model.h"
#include "loong/tokenizer/tokens.h"
#include "fixtures.h"
#include "test_util.h"

using namespace loong::tokenizer;

namespace {

// Every decoder weight random: a fresh CausalConv3d's older temporal taps are
// zero, and a test of the taps would pass with them summed in any order.
VideoTokenizer random_tokenizer(const std::string& norm, std::vector<bool> temporal_down, uint64_t seed) {
  torch::manual_seed(seed);
  auto c = loong::test::micro_tokenizer();
  c.norm = norm;
  c.temporal_down = std::move(temporal_down);
  VideoTokenizer tok(c);
  torch::NoGradGuard ng;
  for (auto& p : tok->decoder->parameters())  // variance-preserving convolutions
    p.normal_(0, p.dim() > 1 ? 1.0 / std::sqrt(static_cast<double>(p.numel() / p.size(0))) : 0.1);
  tok->eval();
  return tok;
}

float max_abs(const at::Tensor& a) { return a.abs().max().item<float>(); }

}  // namespace

TEST(FrameDecoder, GivesTheModelsFrames) {
  torch::NoGradGuard ng;
  for (const std::string norm : {"none", "group"})
    for (const auto& td : std::vector<std::vector<bool>>{{true, true, false}, {false, true, true}}) {
      auto tok = random_tokenizer(norm, td, 3);
      auto fd = tok->frame_decoder(torch::kFloat);
      ASSERT_TRUE(fd) << norm;
      const int f = tok->config.temporal_factor();
      for (int64_t B : {1, 2})
        for (int64_t latent : {1, 2, 5}) {
          auto ids = torch::randint(0, tok->config.codebook_size, {B, latent, 2, 2}, torch::kLong);
          const auto want = tok->decode(ids);
          const auto got = fd->forward(tok->embed_codes(ids));
          const std::string what = norm + " B=" + std::to_string(B) + " latent frames " + std::to_string(latent) +
                                   " temporal " + std::to_string(td[0]) + std::to_string(td[1]) + std::to_string(td[2]);
          ASSERT_EQ(got.sizes(), want.sizes()) << what;
          EXPECT_EQ(got.size(2), 1 + (latent - 1) * f) << what;
          EXPECT_TRUE(got.permute({0, 2, 3, 4, 1}).is_contiguous()) << "frame-major memory: " << what;
          EXPECT_LT(max_abs(got - want), 1e-4 * std::max(1.0f, max_abs(want))) << what;
        }
    }
}

TEST(FrameDecoder, Bf16IsCloseToFloat) {
  torch::NoGradGuard ng;
  auto tok = random_tokenizer("none", {true, true, false}, 4);
  auto ids = torch::randint(0, tok->config.codebook_size, {1, 3, 2, 2}, torch::kLong);
  const auto want = tok->decode(ids);
  const auto got = tok->frame_decoder(torch::kBFloat16)->forward(tok->embed_codes(ids));
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  const auto err = max_abs(got.to(torch::kFloat) - want);
  EXPECT_LT(err, 0.03 * max_abs(want));  // bfloat16 keeps 8 bits
  EXPECT_GT(err, 0);
}

TEST(FrameDecoder, FollowsChangedWeights) {
  torch::NoGradGuard ng;
  auto tok = random_tokenizer("group", {true, true, false}, 5);
  auto ids = torch::randint(0, tok->config.codebook_size, {1, 2, 2, 2}, torch::kLong);
  auto a = tok->frame_decoder(torch::kFloat);
  EXPECT_EQ(a, tok->frame_decoder(torch::kFloat)) << "made once while the weights stay";
  auto a16 = tok->frame_decoder(torch::kBFloat16);
  EXPECT_NE(a, a16);
  EXPECT_EQ(a, tok->frame_decoder(torch::kFloat)) << "one kept for each type";
  EXPECT_EQ(a16, tok->frame_decoder(torch::kBFloat16));
  // The first convolution's weight, which the decoder copies (a stale copy
  // would decode with the old values), changed in place: a training step, a
  // checkpoint copied in.
  auto w = tok->decoder->parameters().front();
  ASSERT_EQ(w.dim(), 5);
  w.add_(0.5);
  auto b = tok->frame_decoder(torch::kFloat);
  EXPECT_NE(a, b);
  EXPECT_LT(max_abs(b->forward(tok->embed_codes(ids)) - tok->decode(ids)), 1e-4 * max_abs(tok->decode(ids)));
  // ... and replaced by another tensor.
  w.set_data(w.detach().clone().mul_(2));
  auto c = tok->frame_decoder(torch::kFloat);
  EXPECT_NE(b, c);
  EXPECT_LT(max_abs(c->forward(tok->embed_codes(ids)) - tok->decode(ids)), 1e-4 * max_abs(tok->decode(ids)));
}

// A decoder with a layer the frame layout does not know is decoded by the
// model itself, through the same decode_clip.
TEST(FrameDecoder, UnknownLayersFallBackToTheModel) {
  torch::NoGradGuard ng;
  auto tok = random_tokenizer("none", {true, true, false}, 6);
  auto ids = torch::randint(0, tok->config.codebook_size, {1, 2, 2, 2}, torch::kLong);
  const auto before = decode_clip(tok, ids, 0, 5, false);
  tok->decoder->push_back(torch::nn::Identity());
  EXPECT_FALSE(tok->frame_decoder(torch::kFloat));
  const auto after = decode_clip(tok, ids, 0, 5, false);
  EXPECT_TRUE(torch::equal(after, video_to_frames(tok->decode(ids)).narrow(1, 0, 5)));
  EXPECT_LE((after.to(torch::kInt) - before.to(torch::kInt)).abs().max().item<int>(), 1);
}

// A tokenizer made under c10::InferenceMode (its weights have no version
// counters) decodes through the frame decoder too.
TEST(FrameDecoder, DecodesATokenizerMadeInInferenceMode) {
  c10::InferenceMode inference;
  auto tok = random_tokenizer("none", {true, true, false}, 9);
  ASSERT_TRUE(tok->decoder->parameters().front().is_inference());
  auto ids = torch::randint(0, tok->config.codebook_size, {1, 2, 2, 2}, torch::kLong);
  ASSERT_TRUE(tok->frame_decoder(torch::kFloat));
  const auto got = decode_clip(tok, ids, 0, 5, false);
  const auto want = video_to_frames(tok->decode(ids));
  EXPECT_LE((got.to(torch::kInt) - want.to(torch::kInt)).abs().max().item<int>(), 1);
}

// The one-pass sum of a convolution's taps against the same sums made by
// LibTorch's operations: shifts, residual, SiLU, both types, the frames that
// no older tap reaches.
TEST(FrameDecoder, SumsTapsInOnePass) {
  torch::manual_seed(7);
  for (auto dtype : {torch::kFloat, torch::kBFloat16})
    for (int64_t T : {1, 2, 5})
      for (bool with_residual : {false, true})
        for (bool silu : {false, true}) {
          auto cl = [&](int64_t frames) {
            return torch::randn({frames, 6, 3, 4}).to(dtype).contiguous(at::MemoryFormat::ChannelsLast);
          };
          auto y = cl(T);
          std::vector<at::Tensor> older;
          for (int64_t s = 1; s <= 2; ++s) older.push_back(s < T ? cl(T - s) : at::Tensor());
          auto r = with_residual ? cl(T) : at::Tensor();
          // The reference, in float32 with the same order of sums.
          auto want = y.to(torch::kFloat).clone();  // not y itself, which the sum writes
          for (int64_t s = 1; s <= 2; ++s)
            if (s < T) want.narrow(0, s, T - s).add_(older[s - 1].to(torch::kFloat));
          if (r.defined()) want.add_(r.to(torch::kFloat));
          if (silu) want = torch::silu(want);
          ASSERT_TRUE(loong::sum_frame_taps_supported(y, older, r));
          loong::sum_frame_taps(y, older, r, silu);
          const std::string what = std::string(dtype == torch::kFloat ? "f32" : "bf16") + " T=" + std::to_string(T) +
                                   (with_residual ? " residual" : "") + (silu ? " silu" : "");
          const float tol = dtype == torch::kFloat ? 1e-5f : 0.01f;  // bfloat16: one rounding
          EXPECT_LT(max_abs(y.to(torch::kFloat) - want), tol * std::max(1.0f, max_abs(want))) << what;
        }
  // Layouts and counts it does not take.
  auto y = torch::randn({3, 4, 2, 2});
  EXPECT_FALSE(loong::sum_frame_taps_supported(y, {torch::randn({1, 4, 2, 2})}, {})) << "wrong frame count";
  EXPECT_FALSE(loong::sum_frame_taps_supported(y, {torch::randn({2, 4, 2, 2}).to(torch::kBFloat16)}, {}));
  EXPECT_FALSE(loong::sum_frame_taps_supported(y, {}, torch::randn({3, 4, 2, 2}).contiguous(at::MemoryFormat::ChannelsLast)));
  EXPECT_FALSE(loong::sum_frame_taps_supported(y, {{}, {}, {}}, {})) << "three older taps";
  EXPECT_FALSE(loong::sum_frame_taps_supported(y.transpose(0, 1), {}, {}));
}
