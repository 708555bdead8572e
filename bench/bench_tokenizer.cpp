// Video tokenizer throughput: encode and decode frames/s and peak memory for a
// clip (default 65 frames at the preset's size), random weights, inference mode.
// Generation's decode of the clip to frames (tokenizer::decode_clip, frame by
// frame on the CPU) against the model's own decode to the same frames, in
// float32 and, where native, bfloat16: clip_frames_*.
// Prints one JSON object. One preset per process, so peak RSS is its own.
// Then the round trip of --single-frames frames, each a one-frame clip (what
// probe training does to half its frames): one call per frame, the baseline,
// against round_trip_frames in one batch; and their encoding alone (what
// `loong tokenize` does to stills): one encode_video call each against
// encode_frames in one batch. With --decoder, a second decoder (the preset's
// config with the given keys, e.g. a lighter decoder_channels) decodes the
// same codes, alternating with the preset's, and the ratio is reported.
//
//   bench_tokenizer [--preset tiny|paper] [--frames 65] [--runs 3] [--single-frames 16] [--device cpu]
//                   [--decoder '{"decoder_channels": [16, 16, 64, 64], "decoder_res_blocks": [1, 2, 2, 2]}']
#include <sys/resource.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include "bench_common.h"
#include "loong/core/runtime.h"
#include "loong/core/torch_compat.h"
#include "loong/tokenizer/model.h"
#include "loong/tokenizer/tokens.h"

using loong::bench::median;
using loong::bench::time_ms;

namespace {
double peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}
}  // namespace

int main(int argc, char** argv) {
  std::string preset = "tiny", device_name = "cpu", decoder_keys;
  int frames = 65, runs = 3, single = 16;
  CLI::App app{"Video tokenizer throughput: encode and decode frames/s, peak memory, batched round trips"};
  app.add_option("--preset", preset, "Tokenizer preset")->check(CLI::IsMember({"tiny", "paper"}));
  app.add_option("--frames", frames, "Frames per clip (1 + 4k)")->check(CLI::Range(1, 1000000));
  app.add_option("--runs", runs, "Repetitions; medians are reported")->check(CLI::Range(1, 1000000));
  app.add_option("--single-frames", single, "Frames of the one-frame round trip")->check(CLI::Range(1, 1000000));
  app.add_option("--device", device_name, "cpu or cuda[:N]");
  app.add_option("--decoder", decoder_keys, "JSON object of config keys for a second decoder timed against the preset's");
  CLI11_PARSE(app, argc, argv);
  try {
    loong::init_threads(0);
    loong::keep_freed_memory();  // as every loong command but the trainers
    const auto device = loong::parse_device(device_name);
    auto cfg = loong::tokenizer::TokenizerConfig::preset(preset);
    torch::manual_seed(0);
    loong::tokenizer::VideoTokenizer tok(cfg);
    tok->eval();
    tok->to(device);
    torch::NoGradGuard ng;
    const double rss_weights = peak_rss_mb();
    auto x = torch::rand({1, 3, frames, cfg.image_size, cfg.image_size}, device) * 2 - 1;
    auto sync = [&] {
      if (device.is_cuda()) torch::cuda::synchronize();
    };
    torch::Tensor ids;
    loong::tokenizer::VideoTokenizer other{nullptr};
    nlohmann::json other_cfg;
    if (!decoder_keys.empty()) {
      auto keys = nlohmann::json::parse(decoder_keys, nullptr, false);
      if (keys.is_discarded() || !keys.is_object()) throw std::runtime_error("--decoder: expected a JSON object");
      other_cfg = cfg.to_json();
      for (auto it = keys.begin(); it != keys.end(); ++it) other_cfg[it.key()] = it.value();
      other = loong::tokenizer::VideoTokenizer(loong::tokenizer::TokenizerConfig::from_json(other_cfg, "--decoder"));
      other->eval();
      other->to(device);
    }
    std::vector<double> enc, dec, dec_other;
    // Generation's decode of a clip to uint8 frames (tokenizer::decode_clip:
    // frame by frame on the CPU, tokenizer/frame_decoder.h) against the
    // model's own decode to the same frames, the baseline, in float32 and,
    // where the CPU computes it natively, in bfloat16 autocast.
    const bool bf16 = loong::tokenizer::decodes_in_bf16(true, device);
    std::vector<double> model_f32, clip_f32, model_bf16, clip_bf16;
    auto model_frames = [&](bool in_bf16) {
      loong::Bf16Autocast autocast(device.type(), in_bf16);
      loong::tokenizer::video_to_frames(tok->decode(ids));
      sync();
    };
    auto clip = [&](bool in_bf16) {
      loong::tokenizer::decode_clip(tok, ids, 0, frames, in_bf16);
      sync();
    };
    for (int r = 0; r < runs; ++r) {
      enc.push_back(time_ms([&] { ids = tok->encode(x); sync(); }));
      dec.push_back(time_ms([&] { tok->decode(ids); sync(); }));
      if (other) dec_other.push_back(time_ms([&] { other->decode(ids); sync(); }));
      if (r == 0) {  // warm-up: the frame decoder's weights are copied on first use
        clip(false);
        clip(bf16);
      }
      model_f32.push_back(time_ms([&] { model_frames(false); }));
      clip_f32.push_back(time_ms([&] { clip(false); }));
      if (bf16) {
        model_bf16.push_back(time_ms([&] { model_frames(true); }));
        clip_bf16.push_back(time_ms([&] { clip(true); }));
      }
    }
    const double e = median(enc), d = median(dec);
    const double rss_clip = peak_rss_mb();  // the clip's peak, before the round trips below
    std::vector<double> one_by_one, batched, enc_one, enc_batched;
    if (single > 0) {
      auto stills = torch::randint(0, 256, {single, cfg.image_size, cfg.image_size, 3}, torch::kUInt8);
      for (int r = 0; r < runs; ++r) {
        one_by_one.push_back(time_ms([&] {
          for (int64_t t = 0; t < single; ++t)
            loong::tokenizer::decode_video(tok, loong::tokenizer::encode_video(tok, stills.narrow(0, t, 1)));
          sync();
        }));
        batched.push_back(time_ms([&] { loong::tokenizer::round_trip_frames(tok, stills); sync(); }));
        enc_one.push_back(time_ms([&] {
          for (int64_t t = 0; t < single; ++t) loong::tokenizer::encode_video(tok, stills.narrow(0, t, 1));
          sync();
        }));
        enc_batched.push_back(time_ms([&] { loong::tokenizer::encode_frames(tok, stills); sync(); }));
      }
    }
    nlohmann::json j = {{"benchmark", "tokenizer"}, {"preset", preset}, {"device", device_name},
                        {"threads", at::get_num_threads()}, {"parameters", tok->parameter_count()},
                        {"frames", frames}, {"size", cfg.image_size}, {"tokens", ids.numel()}, {"runs", runs},
                        {"encode_ms_median", e}, {"decode_ms_median", d},
                        {"encode_frames_per_s", frames * 1000.0 / e}, {"decode_frames_per_s", frames * 1000.0 / d},
                        {"peak_rss_mb_after_weights", rss_weights}, {"peak_rss_mb", rss_clip}};
    j["clip_frames_model_f32_ms_median"] = median(model_f32);
    j["clip_frames_f32_ms_median"] = median(clip_f32);
    j["clip_frames_f32_speedup"] = median(model_f32) / median(clip_f32);
    j["clip_frames_bf16"] = bf16;
    if (bf16) {
      j["clip_frames_model_bf16_ms_median"] = median(model_bf16);
      j["clip_frames_bf16_ms_median"] = median(clip_bf16);
      j["clip_frames_bf16_speedup"] = median(model_bf16) / median(clip_bf16);
    }
    if (other) {
      j["decoder_config"] = other_cfg;
      int64_t n = 0;
      for (const auto& p : other->decoder->parameters()) n += p.numel();
      j["decoder_parameters"] = n;
      j["decoder_ms_median"] = median(dec_other);
      j["decoder_speedup"] = d / median(dec_other);
    }
    if (single > 0) {
      const double a = median(one_by_one), b = median(batched);
      j["single_frames"] = single;
      j["round_trip_one_by_one_ms_median"] = a;
      j["round_trip_batched_ms_median"] = b;
      j["round_trip_speedup"] = a / b;
      const double c = median(enc_one), d2 = median(enc_batched);
      j["encode_stills_one_by_one_ms_median"] = c;
      j["encode_stills_batched_ms_median"] = d2;
      j["encode_stills_speedup"] = c / d2;
    }
    std::cout << j.dump() << std::endl;
  } catch (const std::exception& ex) {
    std::cerr << "bench_tokenizer: " << ex.what() << "\n";
    return 1;
  }
  return 0;
}
