#include "loong/eval/tokenizer_eval.h"

#include <algorithm>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/core/runtime.h"
#include "loong/data/dataset.h"
#include "loong/eval/fvd.h"
#include "loong/eval/metrics.h"
#include "loong/tokenizer/checkpoint.h"
#include "loong/tokenizer/quantizer.h"
#include "loong/tokenizer/tokens.h"

namespace loong::eval {

video::Video read_for_model(const std::string& path, tokenizer::VideoTokenizer model, double fps, int size) {
  video::ReadOptions r;
  r.fps = fps;
  r.size = size > 0 ? size : model->config.image_size;
  const int f = model->config.spatial_factor();
  if (r.size % f != 0) fail("--size", "must be a multiple of " + std::to_string(f) + ", got " + std::to_string(r.size));
  return video::read(path, r);
}

Reconstruction reconstruct(tokenizer::VideoTokenizer model, const std::string& path, double fps, int size,
                           int64_t chunk) {
  Reconstruction r;
  r.input = read_for_model(path, model, fps, size);
  r.tokens = tokenizer::encode_video(model, r.input.frames, chunk, r.input.fps);
  r.frames = tokenizer::decode_video(model, r.tokens);
  r.reference = r.input.frames.narrow(0, 0, r.frames.size(0));
  r.psnr = mean(psnr_per_frame(r.reference, r.frames));
  r.ssim = mean(ssim_per_frame(r.reference, r.frames));
  return r;
}

json evaluate_tokenizer(const TokenizerEvalOptions& o) {
  const auto device = parse_device(o.device);
  std::unique_ptr<VideoFeatureNet> i3d;
  if (!o.detector.empty()) i3d = std::make_unique<VideoFeatureNet>(o.detector, device);
  FeatureStats real_stats, rec_stats;
  auto model = tokenizer::load_model(o.model, device);
  model->config.latent_frames(o.frames);  // validates 1 + 4k
  data::ClipOptions co;
  co.read.fps = o.fps;
  co.read.size = model->config.image_size;
  co.frames = o.frames;
  data::ClipDataset ds(data::load_manifest(o.data), co);
  const int K = model->config.codebook_size;
  auto hist = torch::zeros({K}, torch::kLong);
  std::vector<double> psnr_pos(o.frames, 0.0), all_psnr, all_ssim;
  int64_t clips = 0, skipped = 0;
  const size_t n = o.max_clips > 0 ? std::min<size_t>(o.max_clips, ds.size()) : ds.size();
  for (size_t i = 0; i < n; ++i) {
    if (o.frames > 1 && ds.manifest().entries[i].kind == data::MediaKind::Image) {
      ++skipped;
      continue;
    }
    auto clip = ds.get(i);
    if (!clip) {
      ++skipped;
      continue;
    }
    auto enc = tokenizer::encode_video(model, clip->frames, o.frames);
    enc.bf16 = o.bf16;
    auto rec = tokenizer::decode_video(model, enc);
    hist += torch::bincount(enc.tokens.flatten(), {}, K);
    auto p = psnr_per_frame(clip->frames, rec);
    auto s = ssim_per_frame(clip->frames, rec);
    for (size_t k = 0; k < p.size(); ++k) psnr_pos[k] += p[k];
    all_psnr.insert(all_psnr.end(), p.begin(), p.end());
    all_ssim.insert(all_ssim.end(), s.begin(), s.end());
    if (i3d) {
      real_stats.add(i3d->features(clip->frames.unsqueeze(0)));
      rec_stats.add(i3d->features(rec.unsqueeze(0)));
    }
    ++clips;
  }
  if (clips == 0) fail(o.data, "no entry could be evaluated with " + std::to_string(o.frames) + " frames");
  for (auto& v : psnr_pos) v /= clips;
  const double ppl = tokenizer::code_perplexity(hist.to(torch::kDouble) / hist.sum().item<int64_t>(), 1e-12);
  const int64_t used = (hist > 0).sum().item<int64_t>();
  json j = {{"model", tokenizer::resolve_model_dir(store::bundle_part_or_self(o.model, "tokenizer"))},
            {"data", o.data},
            {"clips", clips},
            {"skipped", skipped},
            {"frames", o.frames},
            {"tokenizer_precision", tokenizer::decodes_in_bf16(o.bf16, device) ? "bf16" : "f32"},
            {"psnr", mean(all_psnr)},
            {"ssim", mean(all_ssim)},
            {"psnr_per_frame", psnr_pos},
            {"codes_used", used},
            {"codebook_size", K},
            {"codebook_usage", static_cast<double>(used) / K},
            {"perplexity", ppl},
            {"tokens", hist.sum().item<int64_t>()}};
  if (i3d) {
    if (clips < 2) fail_input("--detector", "FVD needs at least 2 clips");
    j["fvd"] = frechet_distance(real_stats.mean(), real_stats.covariance(), rec_stats.mean(),
                                      rec_stats.covariance());
    j["detector"] = o.detector;
  }
  return j;
}

}  // namespace loong::eval
