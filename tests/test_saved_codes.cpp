// Generated codes as files (`loong generate --save-codes`, docs/generate.md):
// the clip plan and the codes decode to exactly the frames generation
// emitted; the decode's precision (bfloat16 where native) travels with them.
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "loong/core/torch_compat.h"
#include "loong/gen/long_video.h"
#include "loong/gen/sampling.h"
#include "loong/io/safetensors.h"
#include "loong/lm/model.h"
#include "loong/ops/device.h"
#include "loong/tokenizer/model.h"
#include "loong/tokenizer/tokens.h"
#include "fixtures.h"
#include "test_util.h"

using namespace loong;
using namespace loong::gen;
using loong::test::expect_error;
using loong::test::TempDir;
using loong::test::micro_lm;
using loong::test::micro_options;
using loong::test::micro_tokenizer;

// --save-codes: the codes of each clip and its plan, as a token file, decode
// to exactly the frames generation emitted, with and without re-encoding and
// continuing a given video; the file round-trips.
TEST(Gen, SavedCodesDecodeToTheSameVideo) {
  torch::manual_seed(8);
  tokenizer::VideoTokenizer tok(micro_tokenizer());
  {
    torch::NoGradGuard ng;
    tok->quantizer->embedding->weight.normal_();  // distinct codes decode to distinct frames
  }
  lm::Llama model(micro_lm());
  SamplingOptions s;
  s.seed = 3;
  LongVideoGenerator g(tok, model, lm::Vocab(20, 64), s, loong::test::id_encoder());
  TempDir dir;
  for (int variant = 0; variant < 3; ++variant) {
    auto o = micro_options(6);  // 39 frames in 3 clips
    o.reencode = variant != 1;
    if (variant == 2) o.init_frames = loong::test::natural_clip(9, 16, 16);
    std::vector<at::Tensor> output;  // item 1's frames
    tokenizer::EncodedVideo v;
    std::vector<at::Tensor> grids;
    LongVideoCallbacks cb;
    cb.frames = [&](const at::Tensor& f, int64_t) { output.push_back(f[1]); };
    cb.clip_codes = [&](const at::Tensor& all, const ClipPlan& p, int64_t) {
      EXPECT_EQ(all.sizes(), (std::vector<int64_t>{2, p.latents, 2, 2}));
      grids.push_back(all[1].clone());
      v.chunks.push_back(p.latents);
      v.skip.push_back(p.prefix_frames);
      v.keep.push_back(p.emit);
    };
    g.run(o, loong::test::prompts({"1", "2"}), cb);
    v.tokens = torch::cat(grids);
    v.fps = 6.5;
    v.codebook_size = 64;
    v.bf16 = true;
    v.generation = R"({"model": "m"})";
    auto want = torch::cat(output);
    ASSERT_EQ(want.size(0), 39) << variant;
    EXPECT_EQ(v.skip[0], variant == 2 ? 5 : 0) << variant;
    EXPECT_TRUE(torch::equal(tokenizer::decode_video(tok, v), want)) << variant;
    tokenizer::save_tokens(dir / "c.safetensors", v);
    auto back = tokenizer::load_tokens(dir / "c.safetensors");
    EXPECT_EQ(back.skip, v.skip);
    EXPECT_EQ(back.keep, v.keep);
    EXPECT_TRUE(back.bf16);
    EXPECT_EQ(back.generation, v.generation);
    EXPECT_TRUE(torch::equal(tokenizer::decode_video(tok, back), want)) << variant;
    // Without the plan every decoded frame comes back, the conditions included.
    back.skip.clear(), back.keep.clear();
    EXPECT_GT(tokenizer::decode_video(tok, back).size(0), 39) << variant;
  }
  // A plan asking for frames a chunk does not have, or one entry short.
  tokenizer::EncodedVideo bad;
  bad.tokens = torch::zeros({2, 2, 2}, torch::kLong);
  bad.chunks = {2};
  bad.skip = {3};
  bad.keep = {3};
  expect_error([&] { tokenizer::decode_video(tok, bad); }, {"decodes to 5 frames", "3..6"});
  // A bad entry in the last chunk fails before the first chunk is decoded.
  bad.tokens = torch::zeros({4, 2, 2}, torch::kLong);
  bad.chunks = {2, 2};
  bad.skip = {0, 0};
  bad.keep = {5, 6};
  int decoded = 0;
  expect_error([&] { tokenizer::decode_chunks(tok, bad, [&](const at::Tensor&) { ++decoded; }); },
               {"chunk 1 decodes to 5 frames", "0..6"});
  EXPECT_EQ(decoded, 0);
  // Every digit of the frame rate survives the file (30000/1001 fps).
  bad.keep = {5, 5};
  bad.fps = 30000.0 / 1001.0;
  tokenizer::save_tokens(dir / "f.safetensors", bad);
  EXPECT_EQ(tokenizer::load_tokens(dir / "f.safetensors").fps, 30000.0 / 1001.0);
  // A token file of one 2-frame chunk, plus `extra` tensors and metadata.
  auto write = [&](const std::string& name, std::vector<std::pair<std::string, at::Tensor>> extra,
                   std::map<std::string, std::string> metadata = {}) {
    extra.emplace_back("tokens", torch::zeros({2, 2, 2}, torch::kInt));
    extra.emplace_back("chunks", torch::full({1}, 2, torch::kInt));
    metadata["format"] = "loong-video-tokens";
    const std::string path = dir / name;
    loong::safetensors::save(path, extra, metadata);
    return path;
  };
  auto k = write("k.safetensors", {{"skip", torch::zeros({2}, torch::kInt)}, {"keep", torch::ones({2}, torch::kInt)}});
  expect_error([&] { tokenizer::load_tokens(k); }, {"k.safetensors", "one entry per chunk"});
  auto h = write("h.safetensors", {{"keep", torch::ones({1}, torch::kInt)}});
  expect_error([&] { tokenizer::load_tokens(h); }, {"h.safetensors", "not the other"});
  auto n = write("n.safetensors", {{"skip", torch::full({1}, -1, torch::kInt)}, {"keep", torch::ones({1}, torch::kInt)}});
  expect_error([&] { tokenizer::load_tokens(n); }, {"'skip' entries must be non-negative"});
  // decode=bf16 (bfloat16 where native), or cuda_decode=bf16 as files said
  // before 2026-12-06 (on CUDA only: the CPU decodes them in float32, as
  // generation then did); another value, or both keys, are refused.
  for (const std::string key : {"decode", "cuda_decode"})
    for (const std::string value : {"bf16", "f16"}) {
      auto d = write("d.safetensors", {}, {{key, value}});
      if (value != "bf16") {
        expect_error([&] { tokenizer::load_tokens(d); }, {key + " must be 'bf16'"});
        continue;
      }
      auto v = tokenizer::load_tokens(d);
      EXPECT_TRUE(v.bf16) << key;
      EXPECT_EQ(v.bf16_cuda_only, key == "cuda_decode");
      auto f32 = v;
      f32.bf16 = false;
      const bool same = torch::equal(tokenizer::decode_video(tok, v), tokenizer::decode_video(tok, f32));
      EXPECT_EQ(same, key == "cuda_decode" || !loong::native_bf16(torch::kCPU)) << key;
    }
  auto both = write("d.safetensors", {}, {{"decode", "bf16"}, {"cuda_decode", "bf16"}});
  expect_error([&] { tokenizer::load_tokens(both); }, {"both decode and cuda_decode"});
  EXPECT_FALSE(tokenizer::load_tokens(dir / "f.safetensors").bf16);
}

// Clips decode in bfloat16 where the CPU has it natively (AMX or AVX-512
// BF16), close to float32's frames; elsewhere in float32, the same frames.
TEST(Gen, ClipsDecodeInBf16WhereNative) {
  torch::manual_seed(8);
  tokenizer::VideoTokenizer tok(micro_tokenizer());
  auto codes = torch::randint(0, 64, {2, 3, 2, 2}, torch::kLong);
  const auto f32 = tokenizer::decode_clip(tok, codes, 1, 8, false);
  const auto bf16 = tokenizer::decode_clip(tok, codes, 1, 8, true);
  ASSERT_EQ(bf16.sizes(), f32.sizes());
  const auto diff = (bf16.to(torch::kInt) - f32.to(torch::kInt)).abs().to(torch::kFloat);
  if (loong::native_bf16(torch::kCPU)) {
    EXPECT_FALSE(torch::equal(bf16, f32)) << "bf16 asked for on a CPU that has it";
    EXPECT_LE(diff.max().item<float>(), 12) << "pixels off by more than rounding";
    EXPECT_LE(diff.mean().item<float>(), 1.5);
  } else {
    EXPECT_TRUE(torch::equal(bf16, f32));
  }
  // The guard itself, on any CPU (bfloat16 is emulated where not native):
  // convolutions in bfloat16 inside it, in float32 after it.
  auto x = torch::randn({1, 2, 3, 4, 4});
  auto w = torch::randn({2, 2, 1, 1, 1});
  {
    torch::NoGradGuard ng;
    loong::Bf16Autocast guard(torch::kCPU, true);
    EXPECT_EQ(torch::conv3d(x, w).scalar_type(), torch::kBFloat16);
  }
  EXPECT_EQ(torch::conv3d(x, w).scalar_type(), torch::kFloat);
}
