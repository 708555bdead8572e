// loong tokenizer config | train | encode | decode | reconstruct | eval
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include <torch/torch.h>

#include "cli/commands.h"
#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/core/runtime.h"
#include "loong/eval/tokenizer_eval.h"
#include "loong/gen/sr.h"
#include "loong/gen/upscale.h"
#include "loong/tokenizer/checkpoint.h"
#include "loong/tokenizer/tokens.h"
#include "loong/tokenizer/train_config.h"
#include "loong/tokenizer/trainer.h"
#include "loong/data/clip_sampler.h"
#include "loong/io/video.h"

namespace loong::cli {

namespace {

void write_video(const std::string& path, const torch::Tensor& frames, double fps) {
  video::WriteOptions w;
  w.fps = fps > 0 ? fps : 6.5;
  video::write(path, frames, w);
}

}  // namespace

void add_tokenizer_commands(CLI::App& app, Globals& g) {
  CLI::App* tok = app.add_subcommand("tokenizer", "Train and use the video tokenizer (causal 3D CNN + CVQ)");
  tok->require_subcommand(1);

  {
    auto* cmd = tok->add_subcommand("config", "Print a preset's full run config (model + training) as JSON");
    auto name = std::make_shared<std::string>("tiny");
    cmd->add_option("preset", *name, "tiny or paper, or a config file to expand");
    cmd->callback(command(g, [name] { std::cout << tokenizer::RunConfig::load(*name).to_json().dump(2) << std::endl; }));
  }
  {
    auto* cmd = tok->add_subcommand("train", "Train a tokenizer; writes logs, samples and checkpoints to --out");
    auto config = std::make_shared<std::string>();
    auto data = std::make_shared<std::string>(), out = std::make_shared<std::string>();
    auto device = std::make_shared<std::string>("cpu");
    auto resume = std::make_shared<bool>(false);
    auto quiet = std::make_shared<bool>(false);
    auto max_minutes = std::make_shared<double>(-1);
    auto init = std::make_shared<std::string>();
    auto nproc = std::make_shared<int>(1);
    cmd->add_option("--config", *config, "Run config: a preset (tiny, paper) or a JSON file; with --resume, "
                                          "defaults to the checkpoint's");
    cmd->add_option("--data", *data, "Training manifest (JSONL or CSV; videos and images)")->required();
    cmd->add_option("--out", *out, "Run folder")->required();
    cmd->add_flag("--resume", *resume, "Continue from the newest complete checkpoint in --out");
    cmd->add_option("--init", *init, "Start from this tokenizer's weights (model, checkpoint or run folder, or a "
                                     "bundle such as models/default, of the config's architecture) instead of random "
                                     "ones: fine-tuning");
    cmd->add_option("--device", *device, "cpu or cuda[:N]");
    cmd->add_option("--max-minutes", *max_minutes, "Stop (with a checkpoint) after this long; overrides the config")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--nproc", *nproc,
                    "Train on this many processes on this machine (data parallel, Gloo; docs/distributed.md). "
                    "Under torchrun or Slurm, leave it out")
        ->check(CLI::Range(1, 4096));
    cmd->add_flag("--quiet", *quiet, "Only errors and the final checkpoint path");
    cmd->callback(command(g, [=, &g] {
      auto dev = parse_device(*device);
      tokenizer::RunConfig cfg;
      if (!config->empty()) {
        cfg = tokenizer::RunConfig::load(*config);
      } else if (*resume) {
        cfg = tokenizer::TokenizerTrainer::run_config(*out);
      } else {
        fail("--config", "required (a preset: tiny, paper; or a JSON file) unless --resume is given");
      }
      if (*max_minutes >= 0) cfg.train.max_minutes = *max_minutes;
      auto group = join_job(g, *nproc, dev, cfg.train.dist_timeout_s);
      data::ClipSampler sampler(data::load_manifest(*data), tokenizer::TokenizerTrainer::sampler_options(cfg));
      tokenizer::TrainerOptions to;
      to.run_dir = *out;
      to.device = dev;
      to.resume = *resume;
      to.init_model = *init;
      to.group = group;
      if (group) {
        std::error_code ec;
        to.data_identity = {{"manifest", std::filesystem::path(*data).filename().string()},
                            {"bytes", static_cast<int64_t>(std::filesystem::file_size(*data, ec))},
                            {"entries", sampler.size()}};
      }
      const bool q = *quiet;
      to.print = [q](const std::string& line) {
        if (!q || line.rfind("checkpoint:", 0) == 0) std::printf("%s\n", line.c_str()), std::fflush(stdout);
      };
      {
        tokenizer::TokenizerTrainer trainer(cfg, to);
        trainer.run([&](int frames, int batch, std::mt19937_64& rng) { return sampler.sample(frames, batch, rng); });
      }
      if (group) group->finish();
      if (sampler.dataset().bad() > 0 && (!group || group->root()))
        std::printf("skipped %lld bad sample(s) of %lld; run `loong data check %s`\n",
                    static_cast<long long>(sampler.dataset().bad()), static_cast<long long>(sampler.dataset().tried()),
                    data->c_str());
    }, Heap::Training));
  }

  // Options shared by the commands that load a model.
  struct ModelArgs {
    std::string model, device = "cpu";
  };
  auto add_model = [](CLI::App* cmd, ModelArgs& m) {
    cmd->add_option("--model", m.model, "Model folder, checkpoint folder or training run folder (newest checkpoint)")
        ->required();
    cmd->add_option("--device", m.device, "cpu or cuda[:N]");
  };
  // ... and those that read a video for it.
  struct EncodeArgs : ModelArgs {
    std::string input;
    double fps = 6.5;
    int size = 0, chunk = 65;
  };
  auto add_encode = [add_model](CLI::App* cmd, EncodeArgs& a) {
    add_model(cmd, a);
    cmd->add_option("input", a.input, "Input video or image")->required();
    cmd->add_option("--fps", a.fps, "Frame rate to sample at")->check(CLI::Range(0.1, 240.0));
    cmd->add_option("--size", a.size, "Frame size (shorter side, centre crop); 0 = the model's")
        ->check(CLI::Range(0, 4096));
    cmd->add_option("--chunk", a.chunk, "Frames per independently encoded chunk (1 + 4k)")
        ->check(CLI::Range(1, 100000));
  };

  {
    auto* cmd = tok->add_subcommand("encode", "Video -> tokens (safetensors, int32 [T', H', W'])");
    auto a = std::make_shared<EncodeArgs>();
    auto out = std::make_shared<std::string>();
    add_encode(cmd, *a);
    cmd->add_option("-o,--output", *out, "Output .safetensors")->required();
    cmd->callback(command(g, [=] {
      auto model = tokenizer::load_model(a->model, parse_device(a->device));
      auto v = eval::read_for_model(a->input, model, a->fps, a->size);
      auto enc = tokenizer::encode_video(model, v.frames, a->chunk, v.fps);
      tokenizer::save_tokens(*out, enc);
      std::printf("%s: %lld frames -> tokens %s in %zu chunk(s)%s\n", out->c_str(), static_cast<long long>(enc.frames),
                  c10::str(enc.tokens.sizes()).c_str(), enc.chunks.size(),
                  enc.dropped ? (" (" + std::to_string(enc.dropped) + " trailing frame(s) left out: chunks take 1 + 4k)")
                                    .c_str()
                              : "");
    }));
  }
  {
    auto* cmd = tok->add_subcommand("decode", "Tokens -> video (.mp4, .mkv, .mov or .gif)");
    struct DecodeArgs {
      std::string model, device = "cpu", in, out, upscale_method = "bicubic", sr_model;
      double fps = 0;
      int upscale = 1;
    };
    auto a = std::make_shared<DecodeArgs>();
    cmd->add_option("--model", a->model,
                    "Tokenizer: a model bundle, model folder, checkpoint folder or training run folder; default for "
                    "`loong generate --save-codes` files: the bundle that made them");
    cmd->add_option("--device", a->device, "cpu or cuda[:N]");
    cmd->add_option("input", a->in, "Token file from `loong tokenizer encode` or `loong generate --save-codes`")
        ->required();
    cmd->add_option("-o,--output", a->out, "Output video (.mp4, .mkv, .mov or .gif)")->required();
    cmd->add_option("--fps", a->fps, "Output frame rate; 0 = the token file's")->check(CLI::Range(0.0, 240.0));
    auto* up = cmd->add_option("--upscale", a->upscale, "Upscale the frames by this factor")
                   ->check(CLI::Range(1, 16));
    cmd->add_option("--upscale-method", a->upscale_method, "bicubic or lanczos");
    cmd->add_option("--sr-model", a->sr_model,
                    "Upscale with a learned network: a folder from `loong sr train` or a TorchScript file");
    cmd->callback(command(g, [a, up] {
      require_writable_file({"--output", a->out});
      require_distinct_paths({{"--output", a->out}}, {{"input", a->in}, {"--sr-model", a->sr_model}});
      auto upscaler = gen::resampling_upscaler(a->upscale, a->upscale_method);
      const auto device = parse_device(a->device);
      auto enc = tokenizer::load_tokens(a->in);
      // A `generate --save-codes` file names its bundle and how its frames were upscaled.
      const auto settings = enc.generation.empty() ? nlohmann::json() : nlohmann::json::parse(enc.generation, nullptr, false);
      std::string model = a->model;
      if (model.empty()) {
        if (enc.generation.empty())
          fail("--model", "required: the tokenizer that made " + a->in + " (a model bundle or tokenizer folder)");
        if (!settings.is_object() || !settings.contains("model") || !settings["model"].is_string())
          fail(a->in, "its 'generation' metadata names no model; give --model");
        model = settings["model"].get<std::string>();
      }
      if (up->count() == 0 && a->sr_model.empty() && settings.is_object() && settings.contains("written_with")) {
        const auto& w = settings["written_with"];
        const auto text = [&](const char* key, const std::string& or_else) {
          return w.is_object() && w.contains(key) && w[key].is_string() ? w[key].get<std::string>() : or_else;
        };
        const int factor = w.is_object() && w.contains("upscale") && w["upscale"].is_number_integer() ? w["upscale"].get<int>() : 1;
        const std::string sr = text("sr_model", ""), method = text("upscale_method", "bicubic");
        const std::string flags =
            sr.empty() ? "--upscale " + std::to_string(factor) + " --upscale-method " + method : "--sr-model " + sr;
        if (factor > 1)
          std::fprintf(stderr, "note: `loong generate` wrote this video upscaled %dx; give %s for the same file\n", factor,
                       flags.c_str());
      }
      if (!a->sr_model.empty()) {
        int factor = 0;
        upscaler = gen::load_upscaler(a->sr_model, device, &factor);
        if (up->count() > 0 && a->upscale != factor)
          fail("--upscale", std::to_string(a->upscale) + " does not match --sr-model's factor " + std::to_string(factor));
      }
      auto tok = tokenizer::load_model(model, device);
      // Decoded, upscaled and written clip by clip, as `loong generate` does
      // (a generated video's codes give its file byte for byte).
      video::WriteOptions w;
      w.fps = a->fps > 0 ? a->fps : (enc.fps > 0 ? enc.fps : 6.5);
      w.streaming = !enc.generation.empty() && video::can_stream(a->out);
      if (w.streaming && std::filesystem::exists(video::streaming_path(a->out)))
        fail("--output", video::streaming_path(a->out) + " already exists (a killed run leaves one): remove it");
      std::unique_ptr<video::VideoWriter> writer;
      int64_t at = 0, width = 0, height = 0;
      tokenizer::decode_chunks(tok, enc, [&](const torch::Tensor& frames) {
        auto f = upscaler(frames);
        at += f.size(0);
        if (!writer) {
          height = f.size(1), width = f.size(2);
          writer = std::make_unique<video::VideoWriter>(a->out, static_cast<int>(width), static_cast<int>(height), w);
        }
        writer->write(f);
        writer->flush();
      });
      if (!writer) fail(a->in, "holds no chunk to decode");
      writer->close();
      std::printf("%s: %lld frames %lldx%lld\n", a->out.c_str(), static_cast<long long>(at),
                  static_cast<long long>(width), static_cast<long long>(height));
    }));
  }
  {
    auto* cmd = tok->add_subcommand("reconstruct", "Video -> tokens -> video; prints PSNR and SSIM");
    auto a = std::make_shared<EncodeArgs>();
    auto out = std::make_shared<std::string>();
    auto side = std::make_shared<bool>(false);
    add_encode(cmd, *a);
    cmd->add_option("-o,--output", *out, "Write the reconstruction (.mp4 or .gif)");
    cmd->add_flag("--side-by-side", *side, "Write input | reconstruction side by side");
    cmd->callback(command(g, [=] {
      const auto r = eval::reconstruct(tokenizer::load_model(a->model, parse_device(a->device)), a->input, a->fps,
                                       a->size, a->chunk);
      nlohmann::json j = {{"input", a->input}, {"frames", r.frames.size(0)}, {"psnr", r.psnr}, {"ssim", r.ssim},
                          {"tokens", r.tokens.tokens.numel()}};
      if (!out->empty()) {
        write_video(*out, *side ? torch::cat({r.reference, r.frames}, 2) : r.frames, r.input.fps);
        j["output"] = *out;
      }
      std::cout << j.dump() << std::endl;
    }));
  }
  {
    auto* cmd = tok->add_subcommand("eval", "Reconstruction quality and codebook usage on a manifest (JSON)");
    auto m = std::make_shared<ModelArgs>();
    auto data = std::make_shared<std::string>(), json_out = std::make_shared<std::string>();
    auto frames = std::make_shared<int>(17);
    auto fps = std::make_shared<double>(6.5);
    auto max_clips = std::make_shared<int>(0);
    add_model(cmd, *m);
    cmd->add_option("--data", *data, "Manifest of held-out videos/images")->required();
    cmd->add_option("--frames", *frames, "Frames per clip (1 + 4k), from each entry's start")->check(CLI::Range(1, 100000));
    cmd->add_option("--fps", *fps, "Frame rate to sample at")->check(CLI::Range(0.1, 240.0));
    cmd->add_option("--max-clips", *max_clips, "Evaluate at most this many entries; 0 = all")->check(CLI::NonNegativeNumber);
    cmd->add_option("--json", *json_out, "Also write the report to this file");
    auto bf16 = std::make_shared<bool>(false);
    cmd->add_flag("--bf16", *bf16,
                  "Decode as generation does: in bfloat16 where the device has it natively (CUDA; CPUs with AMX or "
                  "AVX-512 BF16), else in float32");
    auto detector = std::make_shared<std::string>();
    cmd->add_option("--detector", *detector,
                    "Also report FVD between originals and reconstructions with this I3D TorchScript file");
    cmd->callback(command(g, [=] {
      eval::TokenizerEvalOptions o;
      o.model = m->model, o.data = *data, o.frames = *frames, o.fps = *fps, o.max_clips = *max_clips;
      o.detector = *detector;
      o.device = m->device;
      o.bf16 = *bf16;
      const auto j = eval::evaluate_tokenizer(o);
      if (!json_out->empty()) write_json_file(*json_out, j);
      std::cout << j.dump(2) << std::endl;
    }));
  }
}

}  // namespace loong::cli
